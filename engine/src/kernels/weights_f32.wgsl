// weights_f32.wgsl: weights stored as f32. Prepended to kernels that declare `w`.
alias WStore = f32;
fn load_w(i: u32) -> f32 {
    return w[i];
}
// Four consecutive weights from element i (i a multiple of 4).
fn load_w4(i: u32) -> vec4<f32> {
    return vec4<f32>(w[i], w[i + 1u], w[i + 2u], w[i + 3u]);
}
