// weights_q8_0.wgsl: ggml Q8_0 weights, blocks of 32 values y = d · q (q an i8), repacked on
// load to 4-byte alignment: per block one word holding d (f16, low half) then 8 words of q
// (4 per word, little-endian): 9 words per 32 values.
alias WStore = u32;
fn q8_at(word: u32, byte: u32) -> f32 {
    return f32(i32(word << (24u - 8u * byte)) >> 24u);
}
fn load_w(i: u32) -> f32 {
    let b = (i >> 5u) * 9u;
    let j = i & 31u;
    let d = unpack2x16float(w[b]).x;
    return d * q8_at(w[b + 1u + (j >> 2u)], j & 3u);
}
// Four consecutive weights from element i (i a multiple of 4): one word of q.
fn load_w4(i: u32) -> vec4<f32> {
    let b = (i >> 5u) * 9u;
    let d = unpack2x16float(w[b]).x;
    let q = w[b + 1u + ((i & 31u) >> 2u)];
    return d * vec4<f32>(q8_at(q, 0u), q8_at(q, 1u), q8_at(q, 2u), q8_at(q, 3u));
}
