// gather.wgsl: weighted row gather-scatter,
//   dst[map[e, 0], :] (+)= Σ_{j < taps} wt[e, j] · src[map[e, 1 + j], :]
// Two uses: placing vision-tower rows at the image tokens of a text step (taps = 1, unweighted:
// the embeddings are overwritten, the DeepStack features added), and the bilinear resampling of
// Qwen3-VL's learned position table onto a patch grid (taps = 4, added to the patch embeddings).
//
// | binding | name | shape                               | access     |
// |---------|------|-------------------------------------|------------|
// | 0       | p    | Params                              | uniform    |
// | 1       | map  | [entries, 1 + taps] u32             | read       |
// | 2       | wt   | [entries, taps] f32 (if weighted)   | read       |
// | 3       | src  | [rows, dim] f32                     | read       |
// | 4       | dst  | [rows', dim] f32                    | read_write |
//
// One invocation per (entry, column), 256 per workgroup, flat grid.

struct Params {
    entries: u32,
    taps: u32,
    dim: u32,
    accumulate: u32,
    weighted: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> map: array<u32>;
@group(0) @binding(2) var<storage, read> wt: array<f32>;
@group(0) @binding(3) var<storage, read> src: array<f32>;
@group(0) @binding(4) var<storage, read_write> dst: array<f32>;

@compute @workgroup_size(256)
fn gather_rows(@builtin(local_invocation_index) li: u32, @builtin(workgroup_id) wid: vec3<u32>,
               @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_group(wid, nwg) * 256u + li;
    if (i >= p.entries * p.dim) {
        return;
    }
    let e = i / p.dim;
    let d = i % p.dim;
    let m = e * (1u + p.taps);
    var acc = 0.0;
    for (var j = 0u; j < p.taps; j++) {
        var w = 1.0;
        if (p.weighted != 0u) {
            w = wt[e * p.taps + j];
        }
        acc += w * src[map[m + 1u + j] * p.dim + d];
    }
    let o = map[m] * p.dim + d;
    if (p.accumulate != 0u) {
        acc += dst[o];
    }
    dst[o] = acc;
}
