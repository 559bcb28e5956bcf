//! Reference for `kernels::rope`: M-RoPE with chunked or interleaved sections, every angle and
//! its cos/sin computed here in plain loops.

use crate::kernels::rope::MropeLayout;

/// Rotates `x` `[tokens, heads, head_dim]` by `positions` `[3, tokens]`.
pub fn rope(
    x: &[f32],
    positions: &[i32],
    inv_freq: &[f32],
    tokens: usize,
    heads: usize,
    head_dim: usize,
    layout: MropeLayout,
) -> Vec<f32> {
    let half = head_dim / 2;
    let mut y = x.to_vec();
    for t in 0..tokens {
        for h in 0..heads {
            let base = (t * heads + h) * head_dim;
            for i in 0..half {
                let pos = positions[layout.axis(i) * tokens + t] as f32;
                let angle = (pos * inv_freq[i]) as f64;
                let (s, c) = angle.sin_cos();
                let x1 = x[base + i] as f64;
                let x2 = x[base + i + half] as f64;
                y[base + i] = (x1 * c - x2 * s) as f32;
                y[base + i + half] = (x2 * c + x1 * s) as f32;
            }
        }
    }
    y
}
