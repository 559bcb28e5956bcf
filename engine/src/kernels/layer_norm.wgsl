// layer_norm.wgsl: LayerNorm over rows (torch.nn.LayerNorm), computed in f32:
//   y = (x − mean(x)) / sqrt(var(x) + eps) · weight + bias,  var the biased variance
// The norm of the Qwen2-VL and Qwen3-VL vision blocks and of their patch mergers.
//
// | binding | name   | shape        | access     |
// |---------|--------|--------------|------------|
// | 0       | p      | Params       | uniform    |
// | 1       | x      | [rows, dim]  | read       |
// | 2       | weight | [dim] f32    | read       |
// | 3       | bias   | [dim] f32    | read       |
// | 4       | y      | [rows, dim]  | read_write |
//
// One workgroup of 256 per row (flat grid); mean first, then the centred sum of squares, both
// tree-reduced in workgroup memory (two passes keep the variance exact for offset rows).

struct Params {
    rows: u32,
    dim: u32,
    eps: f32,
    _pad: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> weight: array<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;

const WG: u32 = 256u;
var<workgroup> partial: array<f32, 256>;

fn row_sum(li: u32, v: f32) -> f32 {
    partial[li] = v;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s >>= 1u) {
        if (li < s) {
            partial[li] += partial[li + s];
        }
        workgroupBarrier();
    }
    let total = partial[0];
    workgroupBarrier();
    return total;
}

@compute @workgroup_size(256)
fn layer_norm(@builtin(local_invocation_index) li: u32, @builtin(workgroup_id) wid: vec3<u32>,
              @builtin(num_workgroups) nwg: vec3<u32>) {
    let row = flat_group(wid, nwg);
    if (row >= p.rows) {
        return;
    }
    let base = row * p.dim;
    var s = 0.0;
    for (var d = li; d < p.dim; d += WG) {
        s += x[base + d];
    }
    let mean = row_sum(li, s) / f32(p.dim);
    var ss = 0.0;
    for (var d = li; d < p.dim; d += WG) {
        let c = x[base + d] - mean;
        ss += c * c;
    }
    let inv = inverseSqrt(row_sum(li, ss) / f32(p.dim) + p.eps);
    for (var d = li; d < p.dim; d += WG) {
        y[base + d] = (x[base + d] - mean) * inv * weight[d] + bias[d];
    }
}
