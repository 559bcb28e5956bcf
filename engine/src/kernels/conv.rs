//! Launcher for `conv.wgsl`: 1-D convolution as `im2col` followed by a Linear product, so a
//! convolution reads its kernel through the same weight kernels (every dtype) as a Linear.

use bytemuck::{Pod, Zeroable};

use super::{Family, Kernel};
use crate::error::EngineError;
use crate::gpu::{grid, Recorder};

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
pub struct Params {
    pub c_in: u32,
    pub t_in: u32,
    pub k: u32,
    pub stride: u32,
    pub padding: u32,
    pub dilation: u32,
    pub t_out: u32,
    pub c_stride: u32,
    pub t_stride: u32,
    pub _pad: [u32; 3],
}

/// The geometry of a Conv1d (torch names) over an input of `t_in` steps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Geometry {
    pub in_channels: usize,
    pub kernel_size: usize,
    pub stride: usize,
    pub padding: usize,
    pub dilation: usize,
}

impl Geometry {
    /// Output steps for `t_in` input steps (torch's formula); 0 when the input is too short.
    pub fn t_out(&self, t_in: usize) -> usize {
        let span = self.dilation * (self.kernel_size - 1) + 1;
        (t_in + 2 * self.padding).checked_sub(span).map_or(0, |n| n / self.stride + 1)
    }
}

/// How the input is laid out in its buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    /// `[c_in, t_in]`: a spectrogram or a waveform.
    ChannelMajor,
    /// `[t_in, c_in]`: the output of a previous convolution or Linear.
    TimeMajor,
}

/// # Shapes
/// `x` `[c_in, t_in]` or `[t_in, c_in]` by `layout` → `cols` `[t_out, c_in · kernel_size]`.
pub fn im2col(
    rec: &mut Recorder<'_>,
    g: &Geometry,
    layout: Layout,
    x: &wgpu::Buffer,
    t_in: usize,
    cols: &wgpu::Buffer,
) -> Result<usize, EngineError> {
    let t_out = g.t_out(t_in);
    if t_out == 0 || g.stride == 0 || g.kernel_size == 0 || g.dilation == 0 {
        return Err(EngineError::Op {
            op: "conv1d".into(),
            message: format!("{t_in} input steps are too few for {g:?}"),
        });
    }
    let (c_stride, t_stride) = match layout {
        Layout::ChannelMajor => (t_in, 1),
        Layout::TimeMajor => (1, g.in_channels),
    };
    let params = Params {
        c_in: g.in_channels as u32,
        t_in: t_in as u32,
        k: g.kernel_size as u32,
        stride: g.stride as u32,
        padding: g.padding as u32,
        dilation: g.dilation as u32,
        t_out: t_out as u32,
        c_stride: c_stride as u32,
        t_stride: t_stride as u32,
        _pad: [0; 3],
    };
    let n = (t_out * g.in_channels * g.kernel_size) as u32;
    let kernel = Kernel::new(Family::Conv, "im2col", &[false, true]);
    rec.dispatch(&kernel, &params, &[x, cols], grid(n.div_ceil(256)))?;
    Ok(t_out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpu;
    use crate::kernels::matmul;
    use crate::kernels::testing::{assert_close, gpu, gpu_test, random};
    use crate::tensor::DType;

    /// The whole convolution: im2col on the GPU, then the f32 Linear kernel with bias.
    async fn check(c_in: usize, c_out: usize, t_in: usize, k: usize, stride: usize, padding: usize, dilation: usize) {
        let g = gpu().await;
        let geo = Geometry { in_channels: c_in, kernel_size: k, stride, padding, dilation };
        for layout in [Layout::ChannelMajor, Layout::TimeMajor] {
            let x = random(c_in * t_in, 61);
            let w = random(c_out * c_in * k, 62);
            let b = random(c_out, 63);
            let want = cpu::conv::conv1d(&x, layout == Layout::TimeMajor, &w, Some(&b), c_out, t_in, &geo);
            let t_out = geo.t_out(t_in);
            let xb = g.upload("x", bytemuck::cast_slice(&x)).unwrap();
            let wb = g.upload("w", bytemuck::cast_slice(&w)).unwrap();
            let bb = g.upload("b", bytemuck::cast_slice(&b)).unwrap();
            let cols = g.buffer("cols", (t_out * c_in * k * 4) as u64).unwrap();
            let yb = g.buffer("y", (t_out * c_out * 4) as u64).unwrap();
            let mut rec = g.recorder();
            assert_eq!(im2col(&mut rec, &geo, layout, &xb, t_in, &cols).unwrap(), t_out);
            let lin = matmul::Linear {
                x: &cols,
                x_offset: 0,
                m: t_out as u32,
                k: (c_in * k) as u32,
                w: &wb,
                w_dtype: DType::F32,
                n: c_out as u32,
                bias: Some(&bb),
                y: &yb,
                y_offset: 0,
                y_stride: c_out as u32,
                accumulate: false,
            };
            matmul::linear(&mut rec, lin).unwrap();
            rec.submit().unwrap();
            let got = g.read_f32(&yb, 0, t_out * c_out).await.unwrap();
            assert_close(&got, &want, 1e-4, &format!("conv1d {geo:?} t_in {t_in} {layout:?}"));
        }
    }

    // Whisper's stem: k3 s1 p1, then k3 s2 p1.
    gpu_test!(conv1d_whisper_stem, check(80, 24, 50, 3, 1, 1, 1));
    gpu_test!(conv1d_strided, check(24, 16, 51, 3, 2, 1, 1));
    gpu_test!(conv1d_128_mels, check(128, 64, 3000, 3, 1, 1, 1));
    // Moonshine's first conv (k127 s64, no padding) on a short waveform, and a dilated one.
    gpu_test!(conv1d_long_kernel, check(1, 8, 1000, 127, 64, 0, 1));
    gpu_test!(conv1d_dilated, check(5, 7, 40, 3, 1, 3, 3));

    #[test]
    fn output_length_follows_torch() {
        let g = Geometry { in_channels: 1, kernel_size: 3, stride: 2, padding: 1, dilation: 1 };
        assert_eq!(g.t_out(3000), 1500);
        let m = Geometry { in_channels: 1, kernel_size: 127, stride: 64, padding: 0, dilation: 1 };
        assert_eq!(m.t_out(16_000), 249);
        assert_eq!(m.t_out(100), 0);
    }
}
