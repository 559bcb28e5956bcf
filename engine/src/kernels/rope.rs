//! Launcher for `rope.wgsl`, and the M-RoPE cos/sin table it reads (chunked sections for
//! Qwen2/2.5-VL, interleaved for Qwen3-VL).

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
    pub src_offset: u32,
    pub src_stride: u32,
    pub _pad: [u32; 2],
}

/// Where `rope` reads its input: token rows of `stride` elements from element `offset`, the
/// heads contiguous at the start of each row.
#[derive(Clone, Copy, Debug)]
pub struct Src {
    pub offset: u32,
    pub stride: u32,
}

impl Src {
    /// A contiguous `[tokens, heads, head_dim]` tensor.
    pub fn packed(heads: u32, head_dim: u32) -> Self {
        Src { offset: 0, stride: heads * head_dim }
    }
}

/// How rotary frequencies map to the (T, H, W) position rows.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MropeLayout {
    pub section: [u32; 3],
    pub interleaved: bool,
}

impl MropeLayout {
    /// Which position row (0 = T, 1 = H, 2 = W) frequency `i` reads: chunked
    /// (`apply_multimodal_rotary_pos_emb`) or interleaved (`apply_interleaved_mrope`).
    pub fn axis(&self, i: usize) -> usize {
        let [s0, s1, s2] = self.section.map(|s| s as usize);
        if self.interleaved {
            if i % 3 == 1 && i < 3 * s1 {
                1
            } else if i % 3 == 2 && i < 3 * s2 {
                2
            } else {
                0
            }
        } else if i < s0 {
            0
        } else if i < s0 + s1 {
            1
        } else {
            2
        }
    }
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

/// The cos/sin table `[2, tokens, head_dim / 2]` for `positions` `[3, tokens]`: the angle is
/// the f32 product `pos · inv_freq[i]` (as torch computes it), its cos and sin rounded from f64.
pub fn rope_table(positions: &[i32], inv_freq: &[f32], layout: MropeLayout) -> Vec<f32> {
    let tokens = positions.len() / 3;
    let half = inv_freq.len();
    let mut table = vec![0.0f32; 2 * tokens * half];
    for t in 0..tokens {
        for (i, f) in inv_freq.iter().enumerate() {
            let angle = (positions[layout.axis(i) * tokens + t] as f32 * f) as f64;
            table[t * half + i] = angle.cos() as f32;
            table[(tokens + t) * half + i] = angle.sin() as f32;
        }
    }
    table
}

/// The 2-D rotary table of the vision towers (`Qwen2VLVisionRotaryEmbedding`): for patch
/// `(h, w)` the angles `[h · f, w · f]` with `f[j] = θ^(−2j / (head_dim / 2))`, j < head_dim / 4,
/// in the `[2, patches, head_dim / 2]` layout of [`rope_table`].
pub fn vision_rope_table(hw: &[[i32; 2]], theta: f64, head_dim: usize) -> Vec<f32> {
    let f = inv_freq(theta, head_dim / 2);
    let freqs: Vec<f32> = f.iter().chain(&f).copied().collect();
    let quarter = (head_dim / 4) as u32;
    let layout = MropeLayout { section: [0, quarter, quarter], interleaved: false };
    let n = hw.len();
    let mut positions = vec![0i32; 3 * n];
    for (i, [h, w]) in hw.iter().enumerate() {
        positions[n + i] = *h;
        positions[2 * n + i] = *w;
    }
    rope_table(&positions, &freqs, layout)
}

/// # Shapes
/// `x` rows as `src` says, each `[heads, head_dim]` f32 → `y` `[tokens, heads, head_dim]` from
/// element `dst_offset`; `cos_sin` `[2, tokens, head_dim / 2]` from [`rope_table`].
#[allow(clippy::too_many_arguments)]
pub fn rope(
    rec: &mut Recorder<'_>,
    x: &wgpu::Buffer,
    src: Src,
    cos_sin: &wgpu::Buffer,
    y: &wgpu::Buffer,
    dst_offset: u32,
    tokens: u32,
    heads: u32,
    head_dim: u32,
) -> Result<(), EngineError> {
    let params =
        Params { tokens, heads, head_dim, dst_offset, src_offset: src.offset, src_stride: src.stride, _pad: [0; 2] };
    let kernel = Kernel::new(Family::Rope, "rope", &[false, false, true]);
    let n = tokens * heads * head_dim / 2;
    rec.dispatch(&kernel, &params, &[x, cos_sin, y], grid(n.div_ceil(256)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpu;
    use crate::kernels::testing::{assert_close, gpu, gpu_test, random};

    async fn check(tokens: usize, heads: usize, head_dim: usize, layout: MropeLayout, dst_offset: usize) {
        let g = gpu().await;
        let x = random(tokens * heads * head_dim, 31);
        // Distinct T/H/W rows, as an image's positions are, and large positions.
        let positions: Vec<i32> = (0..3 * tokens).map(|i| ((i * 7) % 23) as i32 + (i / tokens) as i32 * 1000).collect();
        let freqs = inv_freq(1e6, head_dim);
        let want = cpu::rope::rope(&x, &positions, &freqs, tokens, heads, head_dim, layout);
        let table = rope_table(&positions, &freqs, layout);
        let xb = g.upload("x", bytemuck::cast_slice(&x)).unwrap();
        let tb = g.upload("cos_sin", bytemuck::cast_slice(&table)).unwrap();
        let yb = g.buffer("y", ((dst_offset + x.len()) * 4) as u64).unwrap();
        let mut rec = g.recorder();
        let src = Src::packed(heads as u32, head_dim as u32);
        rope(&mut rec, &xb, src, &tb, &yb, dst_offset as u32, tokens as u32, heads as u32, head_dim as u32).unwrap();
        rec.submit().unwrap();
        let got = g.read_f32(&yb, dst_offset as u64, x.len()).await.unwrap();
        assert_close(&got, &want, 2e-6, &format!("rope {layout:?}"));
    }

    /// The vision towers' 2-D rotary on q read out of fused `[tokens, 3, heads, head_dim]` rows.
    async fn check_vision(tokens: usize, heads: usize, head_dim: usize) {
        let g = gpu().await;
        let dim = heads * head_dim;
        let qkv = random(tokens * 3 * dim, 33);
        let hw: Vec<[i32; 2]> = (0..tokens as i32).map(|i| [i / 4, i % 7]).collect();
        let mut q = Vec::new();
        let mut positions = vec![0i32; 3 * tokens];
        for t in 0..tokens {
            q.extend_from_slice(&qkv[t * 3 * dim..t * 3 * dim + dim]);
            positions[tokens + t] = hw[t][0];
            positions[2 * tokens + t] = hw[t][1];
        }
        // The reference with the same angles: frequencies j < head_dim/4 on h, the rest on w.
        let f = inv_freq(10000.0, head_dim / 2);
        let freqs: Vec<f32> = f.iter().chain(&f).copied().collect();
        let quarter = (head_dim / 4) as u32;
        let layout = MropeLayout { section: [0, quarter, quarter], interleaved: false };
        let want = cpu::rope::rope(&q, &positions, &freqs, tokens, heads, head_dim, layout);
        let table = vision_rope_table(&hw, 10000.0, head_dim);
        let xb = g.upload("qkv", bytemuck::cast_slice(&qkv)).unwrap();
        let tb = g.upload("cos_sin", bytemuck::cast_slice(&table)).unwrap();
        let yb = g.buffer("q", (tokens * dim * 4) as u64).unwrap();
        let mut rec = g.recorder();
        let src = Src { offset: 0, stride: 3 * dim as u32 };
        rope(&mut rec, &xb, src, &tb, &yb, 0, tokens as u32, heads as u32, head_dim as u32).unwrap();
        rec.submit().unwrap();
        let got = g.read_f32(&yb, 0, tokens * dim).await.unwrap();
        assert_close(&got, &want, 2e-6, "vision rope");
    }

    gpu_test!(rope_vision_strided, check_vision(9, 2, 16));
    gpu_test!(rope_vision_head_dim_80, check_vision(5, 3, 80));

    gpu_test!(rope_chunked_qwen2, check(5, 3, 16, MropeLayout { section: [2, 3, 3], interleaved: false }, 0));
    gpu_test!(rope_interleaved_qwen3, check(9, 2, 16, MropeLayout { section: [4, 2, 2], interleaved: true }, 12));
    gpu_test!(rope_real_sections, check(3, 2, 128, MropeLayout { section: [24, 20, 20], interleaved: true }, 0));
    gpu_test!(rope_real_chunked, check(2, 1, 128, MropeLayout { section: [16, 24, 24], interleaved: false }, 7));

    #[test]
    fn sections_pick_the_documented_axes() {
        let q3 = MropeLayout { section: [24, 20, 20], interleaved: true };
        assert_eq!((0..6).map(|i| q3.axis(i)).collect::<Vec<_>>(), [0, 1, 2, 0, 1, 2]);
        assert_eq!((q3.axis(58), q3.axis(59), q3.axis(60), q3.axis(61)), (1, 2, 0, 0));
        let q2 = MropeLayout { section: [16, 24, 24], interleaved: false };
        assert_eq!((q2.axis(15), q2.axis(16), q2.axis(39), q2.axis(40)), (0, 1, 1, 2));
    }
}
