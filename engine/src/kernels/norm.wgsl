// norm.wgsl: RMSNorm, y = x / sqrt(mean(x²) + eps) · weight, computed in f32
// (Qwen2RMSNorm). Also the per-head q/k norm of Qwen3 with rows = tokens·heads, dim = head_dim.
//
// | binding | name   | shape        | access     |
// |---------|--------|--------------|------------|
// | 0       | p      | Params       | uniform    |
// | 1       | x      | [rows, dim]  | read       |
// | 2       | weight | [dim] f32    | read       |
// | 3       | y      | [rows, dim]  | read_write |
//
// One workgroup of 256 per row (flat grid), tree reduction in workgroup memory.

struct Params {
    rows: u32,
    dim: u32,
    eps: f32,
    _pad: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> weight: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;

const WG: u32 = 256u;
var<workgroup> partial: array<f32, 256>;

@compute @workgroup_size(256)
fn rms_norm(@builtin(local_invocation_index) li: u32, @builtin(workgroup_id) wid: vec3<u32>,
            @builtin(num_workgroups) nwg: vec3<u32>) {
    let row = flat_group(wid, nwg);
    if (row >= p.rows) {
        return;
    }
    let base = row * p.dim;
    var ss = 0.0;
    for (var d = li; d < p.dim; d += WG) {
        let v = x[base + d];
        ss += v * v;
    }
    partial[li] = ss;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s >>= 1u) {
        if (li < s) {
            partial[li] += partial[li + s];
        }
        workgroupBarrier();
    }
    let inv = inverseSqrt(partial[0] / f32(p.dim) + p.eps);
    for (var d = li; d < p.dim; d += WG) {
        y[base + d] = x[base + d] * inv * weight[d];
    }
}
