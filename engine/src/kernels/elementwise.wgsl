// elementwise.wgsl: the residual add and the SiLU-gated MLP product.
//   add_inplace: x[i] += y[i]
//   silu_mul:    x[i] = silu(x[i]) · y[i],  silu(a) = a / (1 + e^(−a))   (Qwen2MLP act_fn(gate)·up)
//
// | binding | name | shape  | access     |
// |---------|------|--------|------------|
// | 0       | p    | Params | uniform    |
// | 1       | y    | [n]    | read       |
// | 2       | x    | [n]    | read_write |
//
// One invocation per element, 256 per workgroup, flat grid.

struct Params {
    n: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> y: array<f32>;
@group(0) @binding(2) var<storage, read_write> x: array<f32>;

@compute @workgroup_size(256)
fn add_inplace(@builtin(local_invocation_index) li: u32, @builtin(workgroup_id) wid: vec3<u32>,
               @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_group(wid, nwg) * 256u + li;
    if (i < p.n) {
        x[i] = x[i] + y[i];
    }
}

@compute @workgroup_size(256)
fn silu_mul(@builtin(local_invocation_index) li: u32, @builtin(workgroup_id) wid: vec3<u32>,
            @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_group(wid, nwg) * 256u + li;
    if (i < p.n) {
        let a = x[i];
        x[i] = a / (1.0 + exp(-a)) * y[i];
    }
}
