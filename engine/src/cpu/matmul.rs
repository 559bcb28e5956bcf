//! Reference for `kernels::matmul`.

/// `y[m, n] = Σ_k x[m, k] · w[n, k] + b[n]`.
pub fn linear(x: &[f32], w: &[f32], b: Option<&[f32]>, m: usize, n: usize, k: usize) -> Vec<f32> {
    let mut y = vec![0.0; m * n];
    for r in 0..m {
        for c in 0..n {
            let mut acc = 0.0f64;
            for i in 0..k {
                acc += x[r * k + i] as f64 * w[c * k + i] as f64;
            }
            y[r * n + c] = acc as f32 + b.map_or(0.0, |b| b[c]);
        }
    }
    y
}
