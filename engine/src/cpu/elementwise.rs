//! Reference for `kernels::elementwise`.

pub fn add(x: &[f32], y: &[f32]) -> Vec<f32> {
    x.iter().zip(y).map(|(a, b)| a + b).collect()
}

/// `silu(gate) · up`, `silu(a) = a / (1 + e^(−a))`.
pub fn silu_mul(gate: &[f32], up: &[f32]) -> Vec<f32> {
    gate.iter().zip(up).map(|(a, b)| (*a as f64 / (1.0 + (-*a as f64).exp())) as f32 * b).collect()
}
