// weights_f16.wgsl: weights stored as IEEE f16, two per u32 word (low half first), widened
// with unpack2x16float so no `shader-f16` feature is needed.
alias WStore = u32;
fn load_w(i: u32) -> f32 {
    let pair = unpack2x16float(w[i >> 1u]);
    return select(pair.x, pair.y, (i & 1u) == 1u);
}
// Four consecutive weights from element i (i a multiple of 4): two aligned words.
fn load_w4(i: u32) -> vec4<f32> {
    let j = i >> 1u;
    return vec4<f32>(unpack2x16float(w[j]), unpack2x16float(w[j + 1u]));
}
