//! Launcher for `rope.wgsl`: multimodal rotary embedding (chunked or interleaved sections).

use bytemuck::{Pod, Zeroable};

use super::{Family, Kernel};
use crate::error::EngineError;
use crate::gpu::{grid, Recorder};

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
pub struct Params {
    pub tokens: u32,
    pub heads: u32,
    pub head_dim: u32,
    pub dst_offset: u32,
    pub s0: u32,
    pub s1: u32,
    pub s2: u32,
    pub interleaved: u32,
}

/// How rotary frequencies map to the (T, H, W) position rows.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MropeLayout {
    pub section: [u32; 3],
    pub interleaved: bool,
}

/// `inv_freq[i] = 1 / θ^(2i / head_dim)`, rounded to f32 as transformers computes it.
pub fn inv_freq(theta: f64, head_dim: usize) -> Vec<f32> {
    (0..head_dim / 2)
        .map(|i| {
            let e = ((2 * i) as f32 / head_dim as f32) as f64;
            (1.0 / (theta.powf(e) as f32) as f64) as f32
        })
        .collect()
}

/// # Shapes
/// `x` `[tokens, heads, head_dim]` f32 → `y` at element `dst_offset`, same layout;
/// `positions` `[3, tokens]` i32; `inv_freq` `[head_dim / 2]` f32.
#[allow(clippy::too_many_arguments)]
pub fn rope(
    rec: &mut Recorder<'_>,
    x: &wgpu::Buffer,
    positions: &wgpu::Buffer,
    inv_freq: &wgpu::Buffer,
    y: &wgpu::Buffer,
    dst_offset: u32,
    tokens: u32,
    heads: u32,
    head_dim: u32,
    layout: MropeLayout,
) -> Result<(), EngineError> {
    let params = Params {
        tokens,
        heads,
        head_dim,
        dst_offset,
        s0: layout.section[0],
        s1: layout.section[1],
        s2: layout.section[2],
        interleaved: layout.interleaved as u32,
    };
    let kernel = Kernel::new(Family::Rope, "rope", &[false, false, false, true]);
    let n = tokens * heads * head_dim / 2;
    rec.dispatch(
        &kernel,
        &params,
        &[x, positions, inv_freq, y],
        grid(n.div_ceil(256)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpu;
    use crate::kernels::testing::{assert_close, gpu, gpu_test, random};

    async fn check(
        tokens: usize,
        heads: usize,
        head_dim: usize,
        layout: MropeLayout,
        dst_offset: usize,
    ) {
        let g = gpu().await;
        let x = random(tokens * heads * head_dim, 31);
        // Distinct T/H/W rows, as an image's positions are.
        let positions: Vec<i32> = (0..3 * tokens)
            .map(|i| ((i * 7) % 23) as i32 + (i / tokens) as i32)
            .collect();
        let freqs = inv_freq(1e6, head_dim);
        let want = cpu::rope::rope(&x, &positions, &freqs, tokens, heads, head_dim, layout);
        let xb = g.upload("x", bytemuck::cast_slice(&x)).unwrap();
        let pb = g.upload("pos", bytemuck::cast_slice(&positions)).unwrap();
        let fb = g.upload("inv_freq", bytemuck::cast_slice(&freqs)).unwrap();
        let yb = g.buffer("y", ((dst_offset + x.len()) * 4) as u64).unwrap();
        let mut rec = g.recorder();
        rope(
            &mut rec,
            &xb,
            &pb,
            &fb,
            &yb,
            dst_offset as u32,
            tokens as u32,
            heads as u32,
            head_dim as u32,
            layout,
        )
        .unwrap();
        rec.submit().unwrap();
        let got = g.read_f32(&yb, dst_offset as u64, x.len()).await.unwrap();
        assert_close(&got, &want, 2e-5, &format!("rope {layout:?}"));
    }

    gpu_test!(
        rope_chunked_qwen2,
        check(
            5,
            3,
            16,
            MropeLayout {
                section: [2, 3, 3],
                interleaved: false
            },
            0
        )
    );
    gpu_test!(
        rope_interleaved_qwen3,
        check(
            9,
            2,
            16,
            MropeLayout {
                section: [4, 2, 2],
                interleaved: true
            },
            12
        )
    );
    gpu_test!(
        rope_real_sections,
        check(
            3,
            2,
            128,
            MropeLayout {
                section: [24, 20, 20],
                interleaved: true
            },
            0
        )
    );
    gpu_test!(
        rope_real_chunked,
        check(
            2,
            1,
            128,
            MropeLayout {
                section: [16, 24, 24],
                interleaved: false
            },
            7
        )
    );
}
