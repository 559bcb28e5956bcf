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

/// Every query over all `n` keys (cross-attention).
///
/// # Shapes
/// `q` `[tokens, heads, hd]`, `k`/`v` `[n, kv_heads, hd]` → `[tokens, heads, hd]`.
#[allow(clippy::too_many_arguments)]
pub fn cross_attention(
    q: &[f32],
    k: &[f32],
    v: &[f32],
    tokens: usize,
    n: usize,
    heads: usize,
    kv_heads: usize,
    hd: usize,
) -> Vec<f32> {
    // Query t of a causal call from `past = n − 1 − t` sees exactly n keys.
    let row = heads * hd;
    (0..tokens).flat_map(|t| attention(&q[t * row..(t + 1) * row], k, v, 1, n - 1, heads, kv_heads, hd)).collect()
}

/// Non-causal attention within blocks `cu` over fused rows `qkv` `[tokens, 3, heads, hd]`
/// → `[tokens, heads, hd]`.
pub fn attention_blocks(qkv: &[f32], cu: &[u32], heads: usize, hd: usize) -> Vec<f32> {
    let dim = heads * hd;
    let tokens = *cu.last().unwrap_or(&0) as usize;
    let scale = 1.0 / (hd as f64).sqrt();
    let row = |t: usize, part: usize, h: usize| &qkv[t * 3 * dim + part * dim + h * hd..][..hd];
    let mut out = vec![0.0; tokens * dim];
    for w in cu.windows(2) {
        let (lo, hi) = (w[0] as usize, w[1] as usize);
        for i in lo..hi {
            for h in 0..heads {
                let scores: Vec<f64> = (lo..hi)
                    .map(|j| {
                        row(i, 0, h).iter().zip(row(j, 1, h)).map(|(a, b)| *a as f64 * *b as f64).sum::<f64>() * scale
                    })
                    .collect();
                let max = scores.iter().cloned().fold(f64::MIN, f64::max);
                let exps: Vec<f64> = scores.iter().map(|s| (s - max).exp()).collect();
                let sum: f64 = exps.iter().sum();
                for d in 0..hd {
                    let acc: f64 = (lo..hi).map(|j| exps[j - lo] * row(j, 2, h)[d] as f64).sum();
                    out[(i * heads + h) * hd + d] = (acc / sum) as f32;
                }
            }
        }
    }
    out
}
