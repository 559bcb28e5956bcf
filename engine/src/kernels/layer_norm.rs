//! Launcher for `layer_norm.wgsl`: LayerNorm with weight and bias over rows.

use bytemuck::{Pod, Zeroable};

use super::{Family, Kernel};
use crate::error::EngineError;
use crate::gpu::{grid, Recorder};

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
pub struct Params {
    pub rows: u32,
    pub dim: u32,
    pub eps: f32,
    pub _pad: u32,
}

/// # Shapes
/// `x` `[rows, dim]`, `weight` and `bias` `[dim]`, `y` `[rows, dim]`, all f32; `x` and `y` differ.
#[allow(clippy::too_many_arguments)]
pub fn layer_norm(
    rec: &mut Recorder<'_>,
    x: &wgpu::Buffer,
    weight: &wgpu::Buffer,
    bias: &wgpu::Buffer,
    y: &wgpu::Buffer,
    rows: u32,
    dim: u32,
    eps: f32,
) -> Result<(), EngineError> {
    let kernel = Kernel::new(Family::LayerNorm, "layer_norm", &[false, false, false, true]);
    rec.dispatch(&kernel, &Params { rows, dim, eps, _pad: 0 }, &[x, weight, bias, y], grid(rows))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpu;
    use crate::kernels::testing::{assert_close, gpu, gpu_test, random};

    async fn check(rows: usize, dim: usize, offset: f32) {
        let g = gpu().await;
        let x: Vec<f32> = random(rows * dim, 24).iter().map(|v| v * 3.0 + offset).collect();
        let w = random(dim, 25);
        let b = random(dim, 26);
        let want = cpu::norm::layer_norm(&x, &w, &b, rows, dim, 1e-6);
        let xb = g.upload("x", bytemuck::cast_slice(&x)).unwrap();
        let wb = g.upload("w", bytemuck::cast_slice(&w)).unwrap();
        let bb = g.upload("b", bytemuck::cast_slice(&b)).unwrap();
        let yb = g.buffer("y", (rows * dim * 4) as u64).unwrap();
        let mut rec = g.recorder();
        layer_norm(&mut rec, &xb, &wb, &bb, &yb, rows as u32, dim as u32, 1e-6).unwrap();
        rec.submit().unwrap();
        let got = g.read_f32(&yb, 0, rows * dim).await.unwrap();
        assert_close(&got, &want, 1e-5, &format!("layer_norm {rows}x{dim}"));
    }

    gpu_test!(layer_norm_one_row, check(1, 32, 0.0));
    gpu_test!(layer_norm_odd, check(5, 333, 0.5));
    gpu_test!(layer_norm_offset_rows, check(9, 1280, 40.0));
}
