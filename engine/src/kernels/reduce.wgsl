// reduce.wgsl: partial sums of a large f32 buffer read as vec4, used to measure the read
// bandwidth the engine's kernels can reach on this adapter (`qwglm bench`).
//   partial[g] = Σ over the vec4s x[i], i = g·256 + t + k·groups·256 (grid-stride), of their lanes
//
// | binding | name    | shape               | access     |
// |---------|---------|---------------------|------------|
// | 0       | p       | Params              | uniform    |
// | 1       | x       | [n_vec4] vec4<f32>  | read       |
// | 2       | partial | [groups] f32        | read_write |
//
// `groups` workgroups of 256 along x; tree reduction in workgroup memory.

struct Params {
    n_vec4: u32,
    groups: u32,
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> partial: array<f32>;

var<workgroup> sums: array<f32, 256>;

@compute @workgroup_size(256)
fn read_sum(@builtin(local_invocation_index) li: u32, @builtin(workgroup_id) wid: vec3<u32>) {
    var acc = vec4<f32>(0.0);
    let stride = p.groups * 256u;
    for (var i = wid.x * 256u + li; i < p.n_vec4; i += stride) {
        acc += x[i];
    }
    sums[li] = acc.x + acc.y + acc.z + acc.w;
    workgroupBarrier();
    for (var s = 128u; s > 0u; s >>= 1u) {
        if (li < s) {
            sums[li] += sums[li + s];
        }
        workgroupBarrier();
    }
    if (li == 0u) {
        partial[wid.x] = sums[0];
    }
}
