//! Launcher for `elementwise.wgsl`: the SiLU-gated product on a fused gate/up output.

use bytemuck::{Pod, Zeroable};

use super::{Family, Kernel};
use crate::error::EngineError;
use crate::gpu::{grid, Recorder};

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
pub struct Params {
    pub n: u32,
    pub inter: u32,
    pub _pad: [u32; 2],
}

/// # Shapes
/// `gate_up` `[tokens, 2 · inter]` (gate then up in each row) → `out` `[tokens, inter]`.
pub fn silu_mul(
    rec: &mut Recorder<'_>,
    gate_up: &wgpu::Buffer,
    out: &wgpu::Buffer,
    tokens: u32,
    inter: u32,
) -> Result<(), EngineError> {
    let kernel = Kernel::new(Family::Elementwise, "silu_mul", &[false, true]);
    let n = tokens * inter;
    rec.dispatch(&kernel, &Params { n, inter, _pad: [0; 2] }, &[gate_up, out], grid(n.div_ceil(256)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpu;
    use crate::kernels::testing::{assert_close, gpu, gpu_test, random};

    async fn check(tokens: usize, inter: usize) {
        let g = gpu().await;
        let gu: Vec<f32> = random(tokens * 2 * inter, 51).iter().map(|v| v * 8.0).collect();
        let want = cpu::elementwise::silu_mul(&gu, tokens, inter);
        let gb = g.upload("gate_up", bytemuck::cast_slice(&gu)).unwrap();
        let ob = g.buffer("out", (tokens * inter * 4) as u64).unwrap();
        let mut rec = g.recorder();
        silu_mul(&mut rec, &gb, &ob, tokens as u32, inter as u32).unwrap();
        rec.submit().unwrap();
        let got = g.read_f32(&ob, 0, tokens * inter).await.unwrap();
        assert_close(&got, &want, 1e-5, "silu_mul");
    }

    gpu_test!(silu_mul_odd, check(3, 259));
    gpu_test!(silu_mul_one, check(1, 1));
    gpu_test!(silu_mul_many_rows, check(70, 96));
}
