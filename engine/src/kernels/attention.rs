//! Launcher for `attention.wgsl`: causal grouped-query attention over the KV cache.

use bytemuck::{Pod, Zeroable};

use super::{Family, Kernel};
use crate::error::EngineError;
use crate::gpu::Recorder;

/// Largest head dimension the kernel's per-thread accumulators hold (WGSL `MAX_HEAD_DIM`).
pub const MAX_HEAD_DIM: u32 = 256;

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
pub struct Params {
    pub tokens: u32,
    pub past: u32,
    pub heads: u32,
    pub kv_heads: u32,
    pub head_dim: u32,
    pub scale: f32,
    pub _pad0: u32,
    pub _pad1: u32,
}

/// Query `t` sits at absolute position `past + t` and sees keys `0..=past + t`.
///
/// # Shapes
/// `q`, `out` `[tokens, heads, head_dim]`; `k`, `v` `[context, kv_heads, head_dim]`, all f32.
#[allow(clippy::too_many_arguments)]
pub fn attention(
    rec: &mut Recorder<'_>,
    q: &wgpu::Buffer,
    k: &wgpu::Buffer,
    v: &wgpu::Buffer,
    out: &wgpu::Buffer,
    tokens: u32,
    past: u32,
    heads: u32,
    kv_heads: u32,
    head_dim: u32,
) -> Result<(), EngineError> {
    if head_dim > MAX_HEAD_DIM || kv_heads == 0 || heads % kv_heads != 0 {
        return Err(EngineError::Op {
            op: "attention".into(),
            message: format!("heads {heads}, kv_heads {kv_heads}, head_dim {head_dim} not supported"),
        });
    }
    let params =
        Params { tokens, past, heads, kv_heads, head_dim, scale: 1.0 / (head_dim as f32).sqrt(), _pad0: 0, _pad1: 0 };
    let kernel = Kernel::new(Family::Attention, "attention", &[false, false, false, true]);
    rec.dispatch(&kernel, &params, &[q, k, v, out], [heads, tokens, 1])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpu;
    use crate::kernels::testing::{assert_close, gpu, gpu_test, random};

    async fn check(tokens: usize, past: usize, heads: usize, kv_heads: usize, head_dim: usize) {
        let g = gpu().await;
        let ctx = past + tokens;
        let q = random(tokens * heads * head_dim, 41);
        let k = random(ctx * kv_heads * head_dim, 42);
        let v = random(ctx * kv_heads * head_dim, 43);
        let want = cpu::attention::attention(&q, &k, &v, tokens, past, heads, kv_heads, head_dim);
        let qb = g.upload("q", bytemuck::cast_slice(&q)).unwrap();
        let kb = g.upload("k", bytemuck::cast_slice(&k)).unwrap();
        let vb = g.upload("v", bytemuck::cast_slice(&v)).unwrap();
        let ob = g.buffer("out", (q.len() * 4) as u64).unwrap();
        let mut rec = g.recorder();
        attention(
            &mut rec,
            &qb,
            &kb,
            &vb,
            &ob,
            tokens as u32,
            past as u32,
            heads as u32,
            kv_heads as u32,
            head_dim as u32,
        )
        .unwrap();
        rec.submit().unwrap();
        let got = g.read_f32(&ob, 0, q.len()).await.unwrap();
        assert_close(&got, &want, 2e-5, &format!("attention t{tokens} past{past} h{heads}/{kv_heads} d{head_dim}"));
    }

    gpu_test!(attention_prefill_gqa, check(7, 0, 4, 2, 16));
    gpu_test!(attention_decode_long, check(1, 150, 4, 1, 32));
    gpu_test!(attention_chunked_prefill, check(70, 65, 2, 2, 8));
    gpu_test!(attention_head_dim_128, check(3, 5, 16, 8, 128));
    gpu_test!(attention_head_dim_256, check(2, 3, 2, 1, 256));
}
