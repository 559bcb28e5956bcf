//! Reference for `kernels::reduce`.

/// `partial[g]` = sum of the vec4s (4 floats each) that workgroup `g` visits in the
/// grid-stride loop of 256 threads.
pub fn read_sum(x: &[f32], groups: usize) -> Vec<f32> {
    let n_vec4 = x.len() / 4;
    let mut partial = vec![0.0f64; groups];
    for i in 0..n_vec4 {
        let g = (i / 256) % groups;
        partial[g] += x[4 * i..4 * i + 4].iter().map(|v| *v as f64).sum::<f64>();
    }
    partial.into_iter().map(|v| v as f32).collect()
}
