// elementwise.wgsl: activations.
// silu_mul: the SiLU-gated product of the MLP (Qwen2MLP: act_fn(gate(x)) · up(x)) on the output
// of the fused gate/up projection, whose rows are [gate | up]:
//   out[t, i] = silu(gu[t, i]) · gu[t, inter + i],  silu(a) = a / (1 + e^(−a))
// activation: out[i] = act(gu[i]) for the vision MLPs and mergers (transformers ACT2FN), by
// `p.act`: 0 GELU with erf (nn.GELU()), 1 GELU with tanh ("gelu_pytorch_tanh"),
// 2 QuickGELU (a · sigmoid(1.702 a)).
//
// | binding | name | shape                                  | access     |
// |---------|------|----------------------------------------|------------|
// | 0       | p    | Params                                 | uniform    |
// | 1       | gu   | [tokens, 2 · inter] (silu_mul), [n]    | read       |
// | 2       | out  | [tokens, inter] (silu_mul), [n]        | read_write |
//
// One invocation per output element, 256 per workgroup, flat grid.

struct Params {
    n: u32,
    inter: u32,
    act: u32,
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

// erf(x) by Abramowitz & Stegun 7.1.26 (absolute error below 1.5e-7); WGSL has no erf.
fn erf(x: f32) -> f32 {
    let t = 1.0 / (1.0 + 0.3275911 * abs(x));
    let poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))));
    return sign(x) * (1.0 - poly * exp(-x * x));
}

@compute @workgroup_size(256)
fn activation(@builtin(local_invocation_index) li: u32, @builtin(workgroup_id) wid: vec3<u32>,
              @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_group(wid, nwg) * 256u + li;
    if (i >= p.n) {
        return;
    }
    let a = gu[i];
    var y: f32;
    switch p.act {
        case 0u: {
            y = 0.5 * a * (1.0 + erf(a * 0.70710678118654752));
        }
        case 1u: {
            // tanh(z) as 1 − 2 / (e^(2z) + 1), clamped so e^(2z) stays finite.
            let z = clamp(0.79788456080286536 * (a + 0.044715 * a * a * a), -15.0, 15.0);
            y = 0.5 * a * (2.0 - 2.0 / (exp(2.0 * z) + 1.0));
        }
        default: {
            y = a / (1.0 + exp(-1.702 * a));
        }
    }
    out[i] = y;
}
