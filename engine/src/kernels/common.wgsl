// common.wgsl: helpers prepended to every kernel.

// Flat workgroup index of a grid split by `gpu::grid` (x side at most 65535).
fn flat_group(wid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return wid.x + wid.y * nwg.x;
}

// A finite stand-in for -inf (WGSL has no infinity literal); exp(NEG_BIG - m) is 0.
const NEG_BIG: f32 = -3.0e38;
