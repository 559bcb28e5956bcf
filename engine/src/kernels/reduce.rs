//! Launcher for `reduce.wgsl`: per-workgroup sums of a buffer, the bandwidth probe of the bench.

use bytemuck::{Pod, Zeroable};

use super::{Family, Kernel};
use crate::error::EngineError;
use crate::gpu::Recorder;

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
pub struct Params {
    pub n_vec4: u32,
    pub groups: u32,
    pub _pad: [u32; 2],
}

/// # Shapes
/// `x` `[n_vec4 · 4]` f32 → `partial` `[groups]` f32 whose sum is the sum of `x`.
pub fn read_sum(
    rec: &mut Recorder<'_>,
    x: &wgpu::Buffer,
    n_vec4: u32,
    partial: &wgpu::Buffer,
    groups: u32,
) -> Result<(), EngineError> {
    let kernel = Kernel::new(Family::Reduce, "read_sum", &[false, true]);
    rec.dispatch(&kernel, &Params { n_vec4, groups, _pad: [0; 2] }, &[x, partial], [groups, 1, 1])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpu;
    use crate::kernels::testing::{assert_close, gpu, gpu_test, random};

    async fn check(n_vec4: usize, groups: usize) {
        let g = gpu().await;
        let x = random(n_vec4 * 4, 61);
        let want = cpu::reduce::read_sum(&x, groups);
        let xb = g.upload("x", bytemuck::cast_slice(&x)).unwrap();
        let pb = g.buffer("partial", (groups * 4) as u64).unwrap();
        let mut rec = g.recorder();
        read_sum(&mut rec, &xb, n_vec4 as u32, &pb, groups as u32).unwrap();
        rec.submit().unwrap();
        let got = g.read_f32(&pb, 0, groups).await.unwrap();
        assert_close(&got, &want, 1e-4, "read_sum");
    }

    gpu_test!(read_sum_grid_stride, check(10_000, 7));
    gpu_test!(read_sum_fewer_elements_than_threads, check(100, 3));
}
