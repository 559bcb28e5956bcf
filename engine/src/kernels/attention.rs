//! Launchers for `attention.wgsl`: causal grouped-query attention over the KV cache, split over
//! the keys so that decoding one token still fills the GPU, then merged; and for
//! `attention_blocks.wgsl`: the vision towers' non-causal attention within blocks.

use bytemuck::{Pod, Zeroable};

use super::{Family, Kernel};
use crate::error::EngineError;
use crate::gpu::Recorder;

/// Largest head dimension the kernel's per-thread accumulators hold (WGSL `MAX_HEAD_DIM`).
pub const MAX_HEAD_DIM: u32 = 256;
/// Keys one split covers at least; shorter slices cost more in the merge than they save.
pub const MIN_KEYS_PER_SPLIT: u32 = 64;
/// Most splits of one (token, head).
pub const MAX_SPLITS: u32 = 128;
/// Partial rows (token · head · split) the scratch holds at least; prefill of many tokens
/// needs no split, so it is given one per (token, head).
pub const MIN_PARTIAL_ROWS: usize = 4096;

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
pub struct Params {
    pub tokens: u32,
    pub past: u32,
    pub heads: u32,
    pub kv_heads: u32,
    pub head_dim: u32,
    pub scale: f32,
    pub splits: u32,
    pub keys_per_split: u32,
    pub ml_offset: u32,
    /// 1: causal (`past` is the cache position), 0: every one of `past` keys.
    pub causal: u32,
    pub _pad: [u32; 2],
}

/// Floats of the partial-results scratch for up to `max_tokens` queries of `heads` heads.
pub fn partial_len(max_tokens: usize, heads: usize, head_dim: usize) -> usize {
    partial_rows(max_tokens, heads) * (head_dim + 2)
}

fn partial_rows(max_tokens: usize, heads: usize) -> usize {
    (max_tokens * heads).max(MIN_PARTIAL_ROWS)
}

/// Which keys each query sees.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Keys {
    /// Query `t` sits at cache position `past + t` and sees keys `0..=past + t`.
    Causal { past: u32 },
    /// Every query sees keys `0..n` (cross-attention on an encoder's output).
    All(u32),
}

impl Keys {
    /// Keys the last query sees.
    fn count(self, tokens: u32) -> u32 {
        match self {
            Keys::Causal { past } => past + tokens,
            Keys::All(n) => n,
        }
    }
}

/// One attention call over cached keys and values.
///
/// # Shapes
/// `q`, `out` `[tokens, heads, head_dim]`; `k`, `v` `[keys, kv_heads, head_dim]`, all f32;
/// `partial` of [`partial_len`]`(tokens, heads, head_dim)` floats or more.
pub struct Attend<'a> {
    pub q: &'a wgpu::Buffer,
    pub k: &'a wgpu::Buffer,
    pub v: &'a wgpu::Buffer,
    pub partial: &'a wgpu::Buffer,
    pub out: &'a wgpu::Buffer,
    pub tokens: u32,
    pub keys: Keys,
    pub heads: u32,
    pub kv_heads: u32,
    pub head_dim: u32,
}

pub fn attention(rec: &mut Recorder<'_>, a: Attend<'_>) -> Result<(), EngineError> {
    let Attend { q, k, v, partial, out, tokens, keys, heads, kv_heads, head_dim } = a;
    if head_dim > MAX_HEAD_DIM || kv_heads == 0 || !heads.is_multiple_of(kv_heads) || keys.count(tokens) == 0 {
        return Err(EngineError::Op {
            op: "attention".into(),
            message: format!("heads {heads}, kv_heads {kv_heads}, head_dim {head_dim}, {keys:?} not supported"),
        });
    }
    let rows_cap = partial_rows(tokens as usize, heads as usize) as u32;
    let n_keys = keys.count(tokens);
    let by_length = n_keys.div_ceil(MIN_KEYS_PER_SPLIT).clamp(1, MAX_SPLITS);
    let splits = by_length.min((rows_cap / (tokens * heads)).max(1));
    let keys_per_split = n_keys.div_ceil(splits);
    let (past, causal) = match keys {
        Keys::Causal { past } => (past, 1),
        Keys::All(n) => (n, 0),
    };
    let params = Params {
        tokens,
        past,
        heads,
        kv_heads,
        head_dim,
        scale: 1.0 / (head_dim as f32).sqrt(),
        splits,
        keys_per_split,
        ml_offset: rows_cap * head_dim,
        causal,
        _pad: [0; 2],
    };
    let partial_k = Kernel::new(Family::AttentionPartial, "attention_partial", &[false, false, false, true]);
    rec.dispatch(&partial_k, &params, &[q, k, v, partial], [heads, tokens, splits])?;
    let combine = Kernel::new(Family::AttentionCombine, "attention_combine", &[false, true]);
    rec.dispatch(&combine, &params, &[partial, out], [heads, tokens, 1])
}

/// Queries per workgroup of `attention_blocks` (WGSL `WG`).
pub const BLOCK_QUERIES: u32 = 64;
/// Largest head dimension of `attention_blocks` (WGSL `MAX_HEAD_DIM`).
pub const BLOCK_MAX_HEAD_DIM: u32 = 128;

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
pub struct BlockParams {
    pub tokens: u32,
    pub heads: u32,
    pub head_dim: u32,
    pub scale: f32,
    pub q_offset: u32,
    pub q_stride: u32,
    pub k_offset: u32,
    pub k_stride: u32,
    pub v_offset: u32,
    pub v_stride: u32,
    pub splits: u32,
    pub keys_per_split: u32,
    pub ml_offset: u32,
    pub _pad: [u32; 3],
}

/// Keys one split of [`attention_blocks_split`] covers at most: a multiple of the key tile,
/// and few enough that an invocation's loops stay under llvmpipe's 65535 iterations at any
/// head_dim up to [`BLOCK_MAX_HEAD_DIM`].
pub const BLOCK_KEYS_PER_SPLIT: u32 = 192;

/// Splits of [`attention_blocks_split`] for blocks of at most `longest` keys.
pub fn block_splits(longest: u32) -> u32 {
    longest.div_ceil(BLOCK_KEYS_PER_SPLIT).max(1)
}

/// Floats of the partial scratch [`attention_blocks_split`] needs.
pub fn block_partial_len(tokens: usize, heads: usize, head_dim: usize, longest: u32) -> usize {
    tokens * heads * block_splits(longest) as usize * (head_dim + 2)
}

/// Rows of `stride` elements from element `offset`, the heads contiguous in each row.
#[derive(Clone, Copy)]
pub struct Rows<'a> {
    pub buf: &'a wgpu::Buffer,
    pub offset: u32,
    pub stride: u32,
}

/// The `bounds` table of `attention_blocks` for blocks `cu_seqlens` (`[0, n₁, n₁+n₂, …]`):
/// each query's key range, then each tile's union of them.
pub fn block_bounds(cu_seqlens: &[u32]) -> Vec<u32> {
    let tokens = cu_seqlens.last().copied().unwrap_or(0);
    let mut b = Vec::with_capacity(2 * tokens as usize);
    for w in cu_seqlens.windows(2) {
        for _ in w[0]..w[1] {
            b.extend_from_slice(&[w[0], w[1]]);
        }
    }
    for t in 0..tokens.div_ceil(BLOCK_QUERIES) {
        let first = (t * BLOCK_QUERIES) as usize;
        let last = ((t + 1) * BLOCK_QUERIES).min(tokens) as usize - 1;
        b.extend_from_slice(&[b[2 * first], b[2 * last + 1]]);
    }
    b
}

/// `out[i, h] = softmax(scale · q[i,h] · k[j,h]ᵀ) v[j,h]` over the keys `j` of `i`'s block.
///
/// # Shapes
/// `q`, `k`, `v` rows `[tokens, heads, head_dim]` as their [`Rows`] say; `bounds` from
/// [`block_bounds`]; `out` `[tokens, heads, head_dim]`, all f32.
#[allow(clippy::too_many_arguments)]
pub fn attention_blocks(
    rec: &mut Recorder<'_>,
    q: Rows<'_>,
    k: Rows<'_>,
    v: Rows<'_>,
    bounds: &wgpu::Buffer,
    out: &wgpu::Buffer,
    tokens: u32,
    heads: u32,
    head_dim: u32,
) -> Result<(), EngineError> {
    blocks_pass(rec, [q, k, v], bounds, out, tokens, heads, head_dim, (1, 0))
}

/// [`attention_blocks`] with each block's keys split over workgroups, merged by
/// `attention_combine`: for long blocks (a Whisper window), which otherwise give few
/// workgroups, each with a long loop. `longest` is the most keys a block has.
///
/// # Shapes
/// As [`attention_blocks`]; `partial` of [`block_partial_len`] floats.
#[allow(clippy::too_many_arguments)]
pub fn attention_blocks_split(
    rec: &mut Recorder<'_>,
    qkv: [Rows<'_>; 3],
    bounds: &wgpu::Buffer,
    partial: &wgpu::Buffer,
    out: &wgpu::Buffer,
    tokens: u32,
    heads: u32,
    head_dim: u32,
    longest: u32,
) -> Result<(), EngineError> {
    let splits = block_splits(longest);
    if splits == 1 {
        return blocks_pass(rec, qkv, bounds, out, tokens, heads, head_dim, (1, 0));
    }
    blocks_pass(rec, qkv, bounds, partial, tokens, heads, head_dim, (splits, BLOCK_KEYS_PER_SPLIT))?;
    let params = Params {
        tokens,
        past: 0,
        heads,
        kv_heads: heads,
        head_dim,
        scale: 1.0,
        splits,
        keys_per_split: BLOCK_KEYS_PER_SPLIT,
        ml_offset: tokens * heads * splits * head_dim,
        causal: 0,
        _pad: [0; 2],
    };
    let combine = Kernel::new(Family::AttentionCombine, "attention_combine", &[false, true]);
    rec.dispatch(&combine, &params, &[partial, out], [heads, tokens, 1])
}

/// One `attention_blocks` dispatch; `(splits, keys_per_split)`, with splits > 1 writing the
/// partial rows into `out`.
#[allow(clippy::too_many_arguments)]
fn blocks_pass(
    rec: &mut Recorder<'_>,
    [q, k, v]: [Rows<'_>; 3],
    bounds: &wgpu::Buffer,
    out: &wgpu::Buffer,
    tokens: u32,
    heads: u32,
    head_dim: u32,
    (splits, keys_per_split): (u32, u32),
) -> Result<(), EngineError> {
    if head_dim > BLOCK_MAX_HEAD_DIM {
        return Err(EngineError::Op {
            op: "attention_blocks".into(),
            message: format!("head_dim {head_dim} above {BLOCK_MAX_HEAD_DIM}"),
        });
    }
    let params = BlockParams {
        tokens,
        heads,
        head_dim,
        scale: 1.0 / (head_dim as f32).sqrt(),
        q_offset: q.offset,
        q_stride: q.stride,
        k_offset: k.offset,
        k_stride: k.stride,
        v_offset: v.offset,
        v_stride: v.stride,
        splits,
        keys_per_split,
        ml_offset: tokens * heads * splits * head_dim,
        _pad: [0; 3],
    };
    let kernel = Kernel::new(Family::AttentionBlocks, "attention_blocks", &[false, false, false, false, true]);
    let grid = [tokens.div_ceil(BLOCK_QUERIES), heads, splits];
    rec.dispatch(&kernel, &params, &[q.buf, k.buf, v.buf, bounds, out], grid)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpu;
    use crate::kernels::testing::{assert_close, gpu, gpu_test, random};

    async fn check_keys(tokens: usize, keys: Keys, heads: usize, kv_heads: usize, head_dim: usize, tol: f32) {
        let g = gpu().await;
        let ctx = keys.count(tokens as u32) as usize;
        let q = random(tokens * heads * head_dim, 41);
        let k = random(ctx * kv_heads * head_dim, 42);
        let v = random(ctx * kv_heads * head_dim, 43);
        let want = match keys {
            Keys::Causal { past } => {
                cpu::attention::attention(&q, &k, &v, tokens, past as usize, heads, kv_heads, head_dim)
            }
            Keys::All(n) => cpu::attention::cross_attention(&q, &k, &v, tokens, n as usize, heads, kv_heads, head_dim),
        };
        let qb = g.upload("q", bytemuck::cast_slice(&q)).unwrap();
        let kb = g.upload("k", bytemuck::cast_slice(&k)).unwrap();
        let vb = g.upload("v", bytemuck::cast_slice(&v)).unwrap();
        let pb = g.buffer("partial", (partial_len(tokens, heads, head_dim) * 4) as u64).unwrap();
        let ob = g.buffer("out", (q.len() * 4) as u64).unwrap();
        let mut rec = g.recorder();
        let (tokens, heads, kv_heads, head_dim) = (tokens as u32, heads as u32, kv_heads as u32, head_dim as u32);
        let a = Attend { q: &qb, k: &kb, v: &vb, partial: &pb, out: &ob, tokens, keys, heads, kv_heads, head_dim };
        attention(&mut rec, a).unwrap();
        rec.submit().unwrap();
        let got = g.read_f32(&ob, 0, q.len()).await.unwrap();
        assert_close(&got, &want, tol, &format!("attention t{tokens} {keys:?} h{heads}/{kv_heads} d{head_dim}"));
    }

    async fn check(tokens: usize, past: usize, heads: usize, kv_heads: usize, head_dim: usize) {
        check_keys(tokens, Keys::Causal { past: past as u32 }, heads, kv_heads, head_dim, 2e-5).await
    }

    /// Blocks over fused `[tokens, 3, heads, head_dim]` rows, as the vision towers call it;
    /// `split` runs [`attention_blocks_split`] instead.
    async fn check_blocks_with(blocks: &[u32], heads: usize, head_dim: usize, split: bool) {
        let g = gpu().await;
        let mut cu = vec![0u32];
        for b in blocks {
            cu.push(cu.last().unwrap() + b);
        }
        let tokens = *cu.last().unwrap() as usize;
        let dim = heads * head_dim;
        let qkv: Vec<f32> = random(tokens * 3 * dim, 44).iter().map(|v| v * 2.0).collect();
        let want = cpu::attention::attention_blocks(&qkv, &cu, heads, head_dim);
        let xb = g.upload("qkv", bytemuck::cast_slice(&qkv)).unwrap();
        let bb = g.upload("bounds", bytemuck::cast_slice(&block_bounds(&cu))).unwrap();
        let ob = g.buffer("out", (tokens * dim * 4) as u64).unwrap();
        let mut rec = g.recorder();
        let rows = |i: u32| Rows { buf: &xb, offset: i * dim as u32, stride: 3 * dim as u32 };
        let (t, h, hd) = (tokens as u32, heads as u32, head_dim as u32);
        if split {
            let longest = *blocks.iter().max().unwrap();
            let pb = g.buffer("partial", (block_partial_len(tokens, heads, head_dim, longest) * 4) as u64).unwrap();
            attention_blocks_split(&mut rec, [rows(0), rows(1), rows(2)], &bb, &pb, &ob, t, h, hd, longest).unwrap();
        } else {
            attention_blocks(&mut rec, rows(0), rows(1), rows(2), &bb, &ob, t, h, hd).unwrap();
        }
        rec.submit().unwrap();
        let got = g.read_f32(&ob, 0, tokens * dim).await.unwrap();
        let what = if split { "attention_blocks_split" } else { "attention_blocks" };
        assert_close(&got, &want, 2e-5, &format!("{what} {blocks:?} h{heads} d{head_dim}"));
    }

    async fn check_blocks(blocks: &[u32], heads: usize, head_dim: usize) {
        check_blocks_with(blocks, heads, head_dim, false).await
    }

    /// A block as long as a Whisper window or a 720p frame. llvmpipe (lavapipe) stops every
    /// shader invocation after 65535 loop iterations in all (gallivm's
    /// `LP_MAX_TGSI_LOOP_ITERATIONS`) and so returns partial sums here; SwiftShader (the
    /// Chromium run) and real GPUs run it whole.
    async fn check_long_block(keys: u32, heads: usize, head_dim: usize) {
        if gpu().await.adapter.name.contains("llvmpipe") {
            eprintln!("attention_blocks over {keys} keys: not on llvmpipe (its loop limiter)");
            return;
        }
        check_blocks(&[keys], heads, head_dim).await
    }

    // Split blocks: a Whisper window (8 splits), blocks of unequal length where some splits of
    // a tile are empty, a short block (one split: the plain kernel), the widest head.
    gpu_test!(attention_blocks_split_whisper_window, check_blocks_with(&[1500], 1, 64, true));
    gpu_test!(attention_blocks_split_uneven, check_blocks_with(&[64, 16, 400, 3], 2, 16, true));
    gpu_test!(attention_blocks_split_short, check_blocks_with(&[100], 2, 32, true));
    gpu_test!(attention_blocks_split_head_dim_128, check_blocks_with(&[500], 1, 128, true));

    gpu_test!(attention_blocks_one_image, check_blocks(&[37], 2, 16));
    gpu_test!(attention_blocks_whisper_window, check_long_block(1500, 1, 64));
    gpu_test!(attention_blocks_windows_across_tiles, check_blocks(&[64, 16, 48, 64, 4, 100], 2, 16));
    gpu_test!(attention_blocks_head_dim_80, check_blocks(&[70, 30], 3, 80));
    gpu_test!(attention_blocks_head_dim_128, check_blocks(&[20], 1, 128));

    #[test]
    fn block_bounds_cover_each_tile() {
        let b = block_bounds(&[0, 60, 70, 200]);
        assert_eq!(&b[..2], &[0, 60]);
        assert_eq!(&b[2 * 65..2 * 66], &[60, 70]);
        // tiles: queries 0..64 see 0..70; 64..128 see 60..200; 128..192 and 192..200 see 70..200.
        assert_eq!(&b[400..], &[0, 70, 60, 200, 70, 200, 70, 200]);
    }

    gpu_test!(attention_prefill_gqa, check(7, 0, 4, 2, 16));
    gpu_test!(attention_decode_long, check(1, 150, 4, 1, 32));
    gpu_test!(attention_decode_many_splits, check(1, 2000, 2, 1, 64));
    gpu_test!(attention_chunked_prefill, check(70, 65, 2, 2, 8));
    gpu_test!(attention_prefill_splits_past_causal_end, check(5, 300, 4, 2, 16));
    gpu_test!(attention_head_dim_128, check(3, 5, 16, 8, 128));
    gpu_test!(attention_head_dim_256, check(2, 3, 2, 1, 256));
    // Cross-attention: every query sees all keys (Whisper's 1500 encoder steps, a last split
    // shorter than the others).
    gpu_test!(attention_cross_decode, check_keys(1, Keys::All(1500), 6, 6, 64, 2e-6));
    gpu_test!(attention_cross_uneven_splits, check_keys(1, Keys::All(1000), 1, 1, 64, 2e-6));
    gpu_test!(attention_cross_prefill, check_keys(5, Keys::All(37), 2, 2, 24, 2e-5));
    // Whisper's encoder self-attention: 1500 queries over the same 1500 keys.
    gpu_test!(attention_whisper_encoder, check_keys(1500, Keys::All(1500), 2, 2, 32, 2e-6));
}
