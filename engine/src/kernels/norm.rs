//! Launcher for `norm.wgsl`: RMSNorm over rows, also used for Qwen3's per-head q/k norm.

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
/// `x` `[rows, dim]`, `weight` `[dim]`, `y` `[rows, dim]`, all f32; `x` and `y` differ.
pub fn rms_norm(
    rec: &mut Recorder<'_>,
    x: &wgpu::Buffer,
    weight: &wgpu::Buffer,
    y: &wgpu::Buffer,
    rows: u32,
    dim: u32,
    eps: f32,
) -> Result<(), EngineError> {
    let kernel = Kernel::new(Family::Norm, "rms_norm", &[false, false, true]);
    rec.dispatch(&kernel, &Params { rows, dim, eps, _pad: 0 }, &[x, weight, y], grid(rows))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpu;
    use crate::kernels::testing::{assert_close, gpu, gpu_test, random};

    async fn check(rows: usize, dim: usize) {
        let g = gpu().await;
        let x = random(rows * dim, 21);
        let w = random(dim, 22);
        let want = cpu::norm::rms_norm(&x, &w, rows, dim, 1e-6);
        let xb = g.upload("x", bytemuck::cast_slice(&x)).unwrap();
        let wb = g.upload("w", bytemuck::cast_slice(&w)).unwrap();
        let yb = g.buffer("y", (rows * dim * 4) as u64).unwrap();
        let mut rec = g.recorder();
        rms_norm(&mut rec, &xb, &wb, &yb, rows as u32, dim as u32, 1e-6).unwrap();
        rec.submit().unwrap();
        let got = g.read_f32(&yb, 0, rows * dim).await.unwrap();
        assert_close(&got, &want, 1e-5, &format!("rms_norm {rows}x{dim}"));
    }

    gpu_test!(rms_norm_one_row, check(1, 64));
    gpu_test!(rms_norm_odd, check(7, 333));
    gpu_test!(rms_norm_heads, check(40, 16));
    gpu_test!(rms_norm_wide, check(3, 2048));
}
