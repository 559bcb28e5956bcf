// weights_f32.wgsl: weights stored as f32. Prepended to kernels that declare `w`.
alias WStore = f32;
fn load_w(i: u32) -> f32 {
    return w[i];
}
