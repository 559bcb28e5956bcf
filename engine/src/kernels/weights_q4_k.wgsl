// weights_q4_k.wgsl: ggml Q4_K weights, blocks of 256 values in ggml's own 144-byte layout
// (already word-aligned): d f16 @0, dmin f16 @2, scales[12] @4 (8 pairs of 6-bit scale and
// min), qs[128] @16. For each 64-value chunk c, values 0..31 are the low nibbles of
// qs[32c..32c+32] with sub-block 2c, values 32..63 the high nibbles with sub-block 2c+1:
//   y = d · scale(sub) · q − dmin · min(sub)   (dequantize_row_q4_K)
alias WStore = u32;
fn q4k_byte(base: u32, byte: u32) -> u32 {
    return (w[base + (byte >> 2u)] >> (8u * (byte & 3u))) & 255u;
}
// (scale, min) of sub-block `s` (get_scale_min_k4): 6-bit values packed in scales[12].
fn q4k_scale_min(base: u32, s: u32) -> vec2<f32> {
    if (s < 4u) {
        return vec2<f32>(f32(q4k_byte(base, 4u + s) & 63u), f32(q4k_byte(base, 8u + s) & 63u));
    }
    let a = q4k_byte(base, 8u + s);
    let sc = (a & 15u) | ((q4k_byte(base, s) >> 6u) << 4u);
    let m = (a >> 4u) | ((q4k_byte(base, 4u + s) >> 6u) << 4u);
    return vec2<f32>(f32(sc), f32(m));
}
// The four consecutive values from element i, i a multiple of 4.
fn load_w4(i: u32) -> vec4<f32> {
    let base = (i >> 8u) * 36u;
    let j = i & 255u;
    let c = j >> 6u;
    let l = j & 63u;
    let high = l >> 5u;
    let dm = unpack2x16float(w[base]);
    let sm = q4k_scale_min(base, 2u * c + high);
    let q = w[base + (16u + 32u * c + (l & 31u)) / 4u] >> (4u * high);
    let nib = vec4<f32>(f32(q & 15u), f32((q >> 8u) & 15u), f32((q >> 16u) & 15u), f32((q >> 24u) & 15u));
    return dm.x * sm.x * nib - vec4<f32>(dm.y * sm.y);
}
fn load_w(i: u32) -> f32 {
    return load_w4(i & ~3u)[i & 3u];
}
