// weights_bf16.wgsl: weights stored as bfloat16, two per u32 word (low half first);
// a bf16 is the high 16 bits of an f32.
alias WStore = u32;
fn load_w(i: u32) -> f32 {
    let word = w[i >> 1u];
    return bitcast<f32>(select(word << 16u, word & 0xffff0000u, (i & 1u) == 1u));
}
// Four consecutive weights from element i (i a multiple of 4): two aligned words.
fn load_w4(i: u32) -> vec4<f32> {
    let a = w[i >> 1u];
    let b = w[(i >> 1u) + 1u];
    return vec4<f32>(bitcast<f32>(a << 16u), bitcast<f32>(a & 0xffff0000u), bitcast<f32>(b << 16u), bitcast<f32>(b & 0xffff0000u));
}
