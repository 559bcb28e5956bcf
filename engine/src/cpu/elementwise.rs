//! Reference for `kernels::elementwise`.

/// `out[t, i] = silu(gu[t, i]) · gu[t, inter + i]`, `silu(a) = a / (1 + e^(−a))`.
pub fn silu_mul(gu: &[f32], tokens: usize, inter: usize) -> Vec<f32> {
    let mut out = Vec::with_capacity(tokens * inter);
    for t in 0..tokens {
        let row = &gu[t * 2 * inter..(t + 1) * 2 * inter];
        for i in 0..inter {
            let a = row[i] as f64;
            out.push((a / (1.0 + (-a).exp())) as f32 * row[inter + i]);
        }
    }
    out
}
