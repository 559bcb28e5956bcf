//! Reference for `kernels::norm`.

/// `y = x / sqrt(mean(x²) + eps) · w`, per row.
pub fn rms_norm(x: &[f32], w: &[f32], rows: usize, dim: usize, eps: f32) -> Vec<f32> {
    let mut y = vec![0.0; rows * dim];
    for r in 0..rows {
        let row = &x[r * dim..(r + 1) * dim];
        let ms = row.iter().map(|v| (*v as f64) * (*v as f64)).sum::<f64>() / dim as f64;
        let inv = 1.0 / (ms + eps as f64).sqrt();
        for d in 0..dim {
            y[r * dim + d] = (row[d] as f64 * inv) as f32 * w[d];
        }
    }
    y
}

/// `y = (x − mean) / sqrt(var + eps) · w + b`, per row, with the biased variance.
pub fn layer_norm(x: &[f32], w: &[f32], b: &[f32], rows: usize, dim: usize, eps: f32) -> Vec<f32> {
    let mut y = vec![0.0; rows * dim];
    for r in 0..rows {
        let row = &x[r * dim..(r + 1) * dim];
        let mean = row.iter().map(|v| *v as f64).sum::<f64>() / dim as f64;
        let var = row.iter().map(|v| (*v as f64 - mean).powi(2)).sum::<f64>() / dim as f64;
        let inv = 1.0 / (var + eps as f64).sqrt();
        for d in 0..dim {
            y[r * dim + d] = ((row[d] as f64 - mean) * inv) as f32 * w[d] + b[d];
        }
    }
    y
}
