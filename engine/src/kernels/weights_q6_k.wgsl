// weights_q6_k.wgsl: ggml Q6_K weights, blocks of 256 values, repacked on load from ggml's
// 210 bytes (ql[128], qh[64], scales i8[16], d f16) to 212 word-aligned bytes: d f16 @0 (padded
// to a word), ql[128] @4, qh[64] @132, scales[16] @196. For half n (128 values), quarter k and
// l < 32 (dequantize_row_q6_K):
//   q = (4 bits of ql[64n + l + 32(k&1)], low for k < 2, high otherwise)
//       | ((qh[32n + l] >> 2k) & 3) << 4,   y = d · scales[8n + l/16 + 2k] · (q − 32)
alias WStore = u32;
fn q6k_byte(base: u32, byte: u32) -> u32 {
    return (w[base + (byte >> 2u)] >> (8u * (byte & 3u))) & 255u;
}
// The four consecutive values from element i, i a multiple of 4 (they share n, k and scale).
fn load_w4(i: u32) -> vec4<f32> {
    let base = (i >> 8u) * 53u;
    let j = i & 255u;
    let n = j >> 7u;
    let k = (j >> 5u) & 3u;
    let l = j & 31u;
    let d = unpack2x16float(w[base]).x;
    let sc = f32(i32(q6k_byte(base, 196u + 8u * n + (l >> 4u) + 2u * k) << 24u) >> 24u);
    let ql = w[base + (4u + 64u * n + l + 32u * (k & 1u)) / 4u] >> (4u * (k >> 1u));
    let qh = w[base + (132u + 32u * n + l) / 4u] >> (2u * k);
    let q = vec4<u32>(ql & 15u, (ql >> 8u) & 15u, (ql >> 16u) & 15u, (ql >> 24u) & 15u)
        | (vec4<u32>(qh & 3u, (qh >> 8u) & 3u, (qh >> 16u) & 3u, (qh >> 24u) & 3u) << vec4<u32>(4u));
    return d * sc * (vec4<f32>(q) - vec4<f32>(32.0));
}
fn load_w(i: u32) -> f32 {
    return load_w4(i & ~3u)[i & 3u];
}
