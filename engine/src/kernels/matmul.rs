//! Launcher for `matmul.wgsl`: the Linear layer `y = x · Wᵀ + b` for any weight storage type.

use bytemuck::{Pod, Zeroable};

use super::{Family, Kernel};
use crate::error::EngineError;
use crate::gpu::Recorder;
use crate::tensor::DType;

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
pub struct Params {
    pub m: u32,
    pub n: u32,
    pub k: u32,
    pub has_bias: u32,
    pub x_offset: u32,
    pub y_offset: u32,
    pub y_stride: u32,
    pub accumulate: u32,
}

/// Rows up to which the matrix-vector kernel is used.
pub const MATVEC_MAX_ROWS: u32 = 4;
const MV_ROWS: u32 = 8;
const TILE: u32 = 64;

/// The inputs of one Linear dispatch.
///
/// # Shapes
/// `x` `[m, k]` f32 from element `x_offset`; `w` `[n, k]` of `w_dtype`; `bias` `[n]` f32;
/// `y[y_offset + row · y_stride + col]` f32.
pub struct Linear<'a> {
    pub x: &'a wgpu::Buffer,
    pub x_offset: u32,
    pub m: u32,
    pub k: u32,
    pub w: &'a wgpu::Buffer,
    pub w_dtype: DType,
    pub n: u32,
    pub bias: Option<&'a wgpu::Buffer>,
    pub y: &'a wgpu::Buffer,
    pub y_offset: u32,
    pub y_stride: u32,
    /// Add to what `y` holds instead of overwriting it (a residual connection).
    pub accumulate: bool,
}

pub fn linear(rec: &mut Recorder<'_>, a: Linear<'_>) -> Result<(), EngineError> {
    let params = Params {
        m: a.m,
        n: a.n,
        k: a.k,
        has_bias: a.bias.is_some() as u32,
        x_offset: a.x_offset,
        y_offset: a.y_offset,
        y_stride: a.y_stride,
        accumulate: a.accumulate as u32,
    };
    let bias = a.bias.unwrap_or(a.x);
    let (entry, groups) = if a.m <= MATVEC_MAX_ROWS {
        let entry = if a.k.is_multiple_of(8) { "matvec8" } else { "matvec" };
        (entry, [a.n.div_ceil(MV_ROWS), a.m, 1])
    } else {
        ("matmul", [a.n.div_ceil(TILE), a.m.div_ceil(TILE), 1])
    };
    let kernel = Kernel::new(Family::Matmul, entry, &[false, false, false, true]).with_weights(a.w_dtype);
    rec.dispatch(&kernel, &params, &[a.x, a.w, bias, a.y], groups)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpu;
    use crate::kernels::testing::{assert_close, encode_weights, gpu, gpu_test, random};

    async fn check(m: usize, n: usize, k: usize, dtype: DType, with_bias: bool, seed: u64) {
        check_acc(m, n, k, dtype, with_bias, seed, false).await
    }

    async fn check_acc(m: usize, n: usize, k: usize, dtype: DType, with_bias: bool, seed: u64, accumulate: bool) {
        let g = gpu().await;
        let x = random(m * k, seed);
        let w = random(n * k, seed + 1);
        let b = random(n, seed + 2);
        let (w_bytes, w_eff) = encode_weights(&w, dtype);
        let y0 = random(m * n, seed + 3);
        let mut want = cpu::matmul::linear(&x, &w_eff, with_bias.then_some(&b[..]), m, n, k);
        if accumulate {
            want.iter_mut().zip(&y0).for_each(|(w, y)| *w += y);
        }
        let xb = g.upload("x", bytemuck::cast_slice(&x)).unwrap();
        let wb = g.upload("w", &w_bytes).unwrap();
        let bb = g.upload("b", bytemuck::cast_slice(&b)).unwrap();
        let yb = g.upload("y", bytemuck::cast_slice(&y0)).unwrap();
        let mut rec = g.recorder();
        linear(
            &mut rec,
            Linear {
                x: &xb,
                x_offset: 0,
                m: m as u32,
                k: k as u32,
                w: &wb,
                w_dtype: dtype,
                n: n as u32,
                bias: with_bias.then_some(&bb),
                y: &yb,
                y_offset: 0,
                y_stride: n as u32,
                accumulate,
            },
        )
        .unwrap();
        rec.submit().unwrap();
        let got = g.read_f32(&yb, 0, m * n).await.unwrap();
        assert_close(&got, &want, 1e-4 * (k as f32).sqrt(), &format!("linear {m}x{n}x{k} {dtype:?}"));
    }

    gpu_test!(matvec_f32_odd, check(1, 37, 29, DType::F32, true, 1));
    gpu_test!(matvec8_f32, check(1, 37, 264, DType::F32, true, 7));
    gpu_test!(matvec8_f16_rows, check(2, 75, 2048, DType::F16, true, 8));
    gpu_test!(matvec8_bf16, check(1, 19, 40, DType::BF16, false, 9));
    gpu_test!(matvec_f16_multi_row, check(3, 130, 66, DType::F16, false, 2));
    gpu_test!(matvec_bf16, check(1, 64, 128, DType::BF16, true, 3));
    gpu_test!(matmul_f32_awkward, check(70, 65, 33, DType::F32, true, 4));
    gpu_test!(matmul_f16, check(17, 96, 48, DType::F16, true, 5));
    gpu_test!(matmul_bf16_large_k, check(9, 20, 300, DType::BF16, false, 6));
    gpu_test!(matvec8_q8_0, check(1, 37, 64, DType::Q8_0, true, 12));
    gpu_test!(matvec8_q4_0, check(2, 45, 2048, DType::Q4_0, false, 13));
    gpu_test!(matmul_q8_0, check(17, 40, 96, DType::Q8_0, true, 14));
    gpu_test!(matmul_q4_0, check(70, 33, 160, DType::Q4_0, false, 15));
    gpu_test!(matvec8_q4_k, check(1, 21, 512, DType::Q4_K, true, 16));
    gpu_test!(matvec8_q6_k, check(3, 17, 256, DType::Q6_K, false, 17));
    gpu_test!(matmul_q4_k, check(20, 36, 256, DType::Q4_K, false, 18));
    gpu_test!(matmul_q6_k, check(9, 70, 512, DType::Q6_K, true, 19));
    gpu_test!(matvec8_accumulate, check_acc(1, 40, 64, DType::F16, true, 10, true));
    gpu_test!(matmul_accumulate, check_acc(33, 70, 24, DType::F32, false, 11, true));
}
