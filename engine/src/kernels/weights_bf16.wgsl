// weights_bf16.wgsl: weights stored as bfloat16, two per u32 word (low half first);
// a bf16 is the high 16 bits of an f32.
alias WStore = u32;
fn load_w(i: u32) -> f32 {
    let word = w[i >> 1u];
    return bitcast<f32>(select(word << 16u, word & 0xffff0000u, (i & 1u) == 1u));
}
