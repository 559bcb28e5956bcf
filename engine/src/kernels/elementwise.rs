//! Launcher for `elementwise.wgsl`: residual add and SiLU-gated product.

use bytemuck::{Pod, Zeroable};

use super::{Family, Kernel};
use crate::error::EngineError;
use crate::gpu::{grid, Recorder};

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
pub struct Params {
    pub n: u32,
    pub _pad: [u32; 3],
}

fn run(
    rec: &mut Recorder<'_>,
    entry: &'static str,
    x: &wgpu::Buffer,
    y: &wgpu::Buffer,
    n: u32,
) -> Result<(), EngineError> {
    let kernel = Kernel::new(Family::Elementwise, entry, &[false, true]);
    rec.dispatch(&kernel, &Params { n, _pad: [0; 3] }, &[y, x], grid(n.div_ceil(256)))
}

/// `x[i] += y[i]` for `i < n`.
pub fn add_inplace(rec: &mut Recorder<'_>, x: &wgpu::Buffer, y: &wgpu::Buffer, n: u32) -> Result<(), EngineError> {
    run(rec, "add_inplace", x, y, n)
}

/// `gate[i] = silu(gate[i]) · up[i]` for `i < n`.
pub fn silu_mul(rec: &mut Recorder<'_>, gate: &wgpu::Buffer, up: &wgpu::Buffer, n: u32) -> Result<(), EngineError> {
    run(rec, "silu_mul", gate, up, n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpu;
    use crate::kernels::testing::{assert_close, gpu, gpu_test, random};

    async fn check(n: usize, silu: bool) {
        let g = gpu().await;
        let x: Vec<f32> = random(n, 51).iter().map(|v| v * 8.0).collect();
        let y = random(n, 52);
        let want = if silu { cpu::elementwise::silu_mul(&x, &y) } else { cpu::elementwise::add(&x, &y) };
        let xb = g.upload("x", bytemuck::cast_slice(&x)).unwrap();
        let yb = g.upload("y", bytemuck::cast_slice(&y)).unwrap();
        let mut rec = g.recorder();
        if silu {
            silu_mul(&mut rec, &xb, &yb, n as u32).unwrap();
        } else {
            add_inplace(&mut rec, &xb, &yb, n as u32).unwrap();
        }
        rec.submit().unwrap();
        let got = g.read_f32(&xb, 0, n).await.unwrap();
        assert_close(&got, &want, 1e-5, if silu { "silu_mul" } else { "add" });
    }

    gpu_test!(add_odd, check(1000, false));
    gpu_test!(silu_mul_odd, check(777, true));
    gpu_test!(silu_mul_one, check(1, true));
}
