// weights_q4_0.wgsl: ggml Q4_0 weights, blocks of 32 values y = d · (q − 8) with 4-bit q:
// value j < 16 is the low nibble of byte j, value j ≥ 16 the high nibble of byte j − 16.
// Repacked on load to 4-byte alignment: one word holding d (f16, low half) then the 16 bytes
// of nibbles in 4 words: 5 words per 32 values.
alias WStore = u32;
fn q4_at(word: u32, byte: u32, high: u32) -> f32 {
    return f32((word >> (8u * byte + 4u * high)) & 15u) - 8.0;
}
fn load_w(i: u32) -> f32 {
    let b = (i >> 5u) * 5u;
    let j = i & 31u;
    let jj = j & 15u;
    let d = unpack2x16float(w[b]).x;
    return d * q4_at(w[b + 1u + (jj >> 2u)], jj & 3u, j >> 4u);
}
// Four consecutive weights from element i (i a multiple of 4): nibbles of one word.
fn load_w4(i: u32) -> vec4<f32> {
    let b = (i >> 5u) * 5u;
    let j = i & 31u;
    let high = j >> 4u;
    let d = unpack2x16float(w[b]).x;
    let q = w[b + 1u + ((j & 15u) >> 2u)];
    return d * vec4<f32>(q4_at(q, 0u, high), q4_at(q, 1u, high), q4_at(q, 2u, high), q4_at(q, 3u, high));
}
