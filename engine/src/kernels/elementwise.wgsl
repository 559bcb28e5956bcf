// elementwise.wgsl: the SiLU-gated product of the MLP (Qwen2MLP: act_fn(gate(x)) · up(x)) on
// the output of the fused gate/up projection, whose rows are [gate | up]:
//   out[t, i] = silu(gu[t, i]) · gu[t, inter + i],  silu(a) = a / (1 + e^(−a))
//
// | binding | name | shape               | access     |
// |---------|------|---------------------|------------|
// | 0       | p    | Params              | uniform    |
// | 1       | gu   | [tokens, 2 · inter] | read       |
// | 2       | out  | [tokens, inter]     | read_write |
//
// One invocation per output element, 256 per workgroup, flat grid.

struct Params {
    n: u32,
    inter: u32,
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> gu: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(256)
fn silu_mul(@builtin(local_invocation_index) li: u32, @builtin(workgroup_id) wid: vec3<u32>,
            @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_group(wid, nwg) * 256u + li;
    if (i < p.n) {
        let t = i / p.inter;
        let c = i % p.inter;
        let a = gu[t * 2u * p.inter + c];
        out[i] = a / (1.0 + exp(-a)) * gu[t * 2u * p.inter + p.inter + c];
    }
}
