//! Reference for `kernels::attention`: causal grouped-query attention over a cache.

/// # Shapes
/// `q` `[tokens, heads, hd]`, `k`/`v` `[past + tokens, kv_heads, hd]` → `[tokens, heads, hd]`.
#[allow(clippy::too_many_arguments)]
pub fn attention(
    q: &[f32],
    k: &[f32],
    v: &[f32],
    tokens: usize,
    past: usize,
    heads: usize,
    kv_heads: usize,
    hd: usize,
) -> Vec<f32> {
    let scale = 1.0 / (hd as f64).sqrt();
    let group = heads / kv_heads;
    let mut out = vec![0.0; tokens * heads * hd];
    for t in 0..tokens {
        for h in 0..heads {
            let g = h / group;
            let qv = &q[(t * heads + h) * hd..][..hd];
            let n = past + t + 1;
            let scores: Vec<f64> = (0..n)
                .map(|j| {
                    let kv = &k[(j * kv_heads + g) * hd..][..hd];
                    qv.iter().zip(kv).map(|(a, b)| *a as f64 * *b as f64).sum::<f64>() * scale
                })
                .collect();
            let max = scores.iter().cloned().fold(f64::MIN, f64::max);
            let exps: Vec<f64> = scores.iter().map(|s| (s - max).exp()).collect();
            let sum: f64 = exps.iter().sum();
            for d in 0..hd {
                let acc: f64 = (0..n).map(|j| exps[j] * v[(j * kv_heads + g) * hd + d] as f64).sum();
                out[(t * heads + h) * hd + d] = (acc / sum) as f32;
            }
        }
    }
    out
}
