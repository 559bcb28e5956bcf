//! The Qwen-VL vision towers (transformers' `Qwen2VisionTransformerPretrainedModel`,
//! `Qwen2_5_VisionTransformerPretrainedModel`, `Qwen3VLVisionModel`): flattened patches → patch
//! embedding (one matmul) → pre-norm ViT blocks with 2-D rotary and non-causal attention within
//! each image (Qwen2.5-VL: within 8×8-patch windows except in `fullatt_block_indexes`) → the
//! patch merger (2×2 patches → one text-width token). Qwen3-VL adds a learned position table
//! resampled to each grid and DeepStack mergers whose outputs feed the first text layers.
//!
//! The families differ by config: LayerNorm or RMSNorm, GELU-family MLP or SwiGLU, windows,
//! position table, DeepStack. Index bookkeeping (rotary angles, window order, attention
//! blocks, resampling taps) is computed on the host from the grids, as transformers'
//! `vision_utils` does; the work on activations runs in the kernels.

use crate::error::EngineError;
use crate::formats::hf_config::VisionConfig;
use crate::gpu::{Gpu, Recorder};
use crate::kernels::attention::{self, Rows};
use crate::kernels::elementwise::{self, Act};
use crate::kernels::gather::{self, GatherRows};
use crate::kernels::rope;
use crate::load::{ByteSource, TensorIndex};
use crate::models::layers::{Linear, Loader, Norm, OutAt};

/// LayerNorm/RMSNorm epsilon of every vision block and merger.
const EPS: f32 = 1e-6;
/// Bytes one MLP intermediate buffer may take; longer inputs run the MLP in row chunks.
const MLP_CHUNK_BYTES: u64 = 64 << 20;

/// The block MLP under `blocks.{i}.mlp.`.
enum Mlp {
    /// Qwen2-VL `fc1`/`fc2`, Qwen3-VL `linear_fc1`/`linear_fc2`: `fc2(act(fc1(x)))`.
    Plain { fc1: Linear, fc2: Linear, act: Act },
    /// Qwen2.5-VL: `down_proj(silu(gate_proj(x)) · up_proj(x))`, gate and up stacked.
    Gated { gate_up_proj: Linear, down_proj: Linear },
}

/// Self-attention under `blocks.{i}.attn.`: fused `qkv` with bias, output `proj`.
struct Attention {
    qkv: Linear,
    proj: Linear,
}

/// One block under `blocks.{i}.`: `x += proj(attn(norm1(x)))`, `x += mlp(norm2(x))`.
struct Block {
    norm1: Norm,
    attn: Attention,
    norm2: Norm,
    mlp: Mlp,
}

/// A patch merger: norm, 2×2 patches concatenated, `fc2(gelu(fc1(·)))`. The main merger of
/// every family normalises each patch before the concatenation; Qwen3's DeepStack mergers
/// normalise the concatenated row (`use_postshuffle_norm`).
struct Merger {
    norm: Norm,
    postshuffle: bool,
    fc1: Linear,
    fc2: Linear,
}

/// A loaded vision tower.
pub struct VisionModel {
    pub cfg: VisionConfig,
    patch_embed: Linear,
    /// Qwen3-VL `pos_embed.weight` `[side², hidden]` f32.
    pos_embed: Option<wgpu::Buffer>,
    blocks: Vec<Block>,
    merger: Merger,
    deepstack_merger_list: Vec<Merger>,
}

/// The patches of one or more images, as `vision::patchify` lays them out.
///
/// # Shapes
/// `patches` `[Σ t·h·w, patch_dim]` (each image in merge-block order); `grids` one `[t, h, w]`
/// patch grid per image.
pub struct VisionInput<'a> {
    pub patches: &'a [f32],
    pub grids: &'a [[usize; 3]],
}

/// The merged tokens of a forward, on the GPU.
///
/// # Shapes
/// `embeds` `[tokens, out_hidden]`; each of `deepstack` the same.
pub struct VisionOutput {
    pub embeds: wgpu::Buffer,
    pub deepstack: Vec<wgpu::Buffer>,
    pub tokens: usize,
    /// Row `r` of `embeds` is merged token `unit_of_row[r]` in image order (Qwen2.5-VL's
    /// window order; the identity otherwise).
    pub unit_of_row: Vec<u32>,
}

impl VisionModel {
    /// Loads the tower from tensors under `prefix` (`visual.` or `model.visual.`).
    pub async fn load<S: ByteSource>(
        l: &mut Loader<'_, S>,
        cfg: &VisionConfig,
        prefix: &str,
    ) -> Result<Self, EngineError> {
        let (c, inter) = (cfg.hidden_size, cfg.intermediate_size);
        let (qwen3, rms) = (cfg.qwen3(), cfg.swiglu());
        let split = Self::split_qkv(l.index, prefix);
        let patch_embed = Linear::load(l, &format!("{prefix}patch_embed.proj"), cfg.patch_dim(), c, qwen3).await?;
        let pos_embed = if qwen3 {
            Some(l.table(&format!("{prefix}pos_embed.weight"), cfg.num_position_embeddings, c).await?)
        } else {
            None
        };
        let mut blocks = Vec::with_capacity(cfg.depth);
        for i in 0..cfg.depth {
            let p = format!("{prefix}blocks.{i}");
            let m = format!("{p}.mlp");
            let mlp = if rms {
                Mlp::Gated {
                    gate_up_proj: Linear::load_stacked(
                        l,
                        &[&format!("{m}.gate_proj"), &format!("{m}.up_proj")],
                        c,
                        inter,
                        true,
                    )
                    .await?,
                    down_proj: Linear::load(l, &format!("{m}.down_proj"), inter, c, true).await?,
                }
            } else {
                let act = Act::from_name(&cfg.hidden_act).ok_or_else(|| EngineError::Op {
                    op: "vision mlp".into(),
                    message: format!("activation {:?} not supported", cfg.hidden_act),
                })?;
                let (n1, n2) = if qwen3 { ("linear_fc1", "linear_fc2") } else { ("fc1", "fc2") };
                Mlp::Plain {
                    fc1: Linear::load(l, &format!("{m}.{n1}"), c, inter, true).await?,
                    fc2: Linear::load(l, &format!("{m}.{n2}"), inter, c, true).await?,
                    act,
                }
            };
            blocks.push(Block {
                norm1: Norm::load(l, &format!("{p}.norm1"), c, EPS, rms).await?,
                attn: Attention {
                    qkv: if split {
                        let [q, k, v] = ["q", "k", "v"].map(|n| format!("{p}.attn.{n}"));
                        Linear::load_stacked(l, &[&q, &k, &v], c, c, true).await?
                    } else {
                        Linear::load(l, &format!("{p}.attn.qkv"), c, 3 * c, true).await?
                    },
                    proj: Linear::load(l, &format!("{p}.attn.proj"), c, c, true).await?,
                },
                norm2: Norm::load(l, &format!("{p}.norm2"), c, EPS, rms).await?,
                mlp,
            });
        }
        let merger = Merger::load(l, cfg, &format!("{prefix}merger"), false).await?;
        let mut deepstack_merger_list = Vec::new();
        for k in 0..cfg.deepstack_visual_indexes.len() {
            deepstack_merger_list
                .push(Merger::load(l, cfg, &format!("{prefix}deepstack_merger_list.{k}"), true).await?);
        }
        Ok(VisionModel { cfg: cfg.clone(), patch_embed, pos_embed, blocks, merger, deepstack_merger_list })
    }

    /// Whether the checkpoint stores each block's q, k and v apart (llama.cpp's Qwen2/2.5-VL
    /// `mmproj` files) rather than fused as `attn.qkv`.
    pub fn split_qkv(index: &TensorIndex, prefix: &str) -> bool {
        !index.contains(&format!("{prefix}blocks.0.attn.qkv.weight"))
            && index.contains(&format!("{prefix}blocks.0.attn.q.weight"))
    }

    /// Names of every tensor `load` reads.
    pub fn tensor_names(cfg: &VisionConfig, prefix: &str, split_qkv: bool) -> Vec<String> {
        let (qwen3, rms) = (cfg.qwen3(), cfg.swiglu());
        let lin = |n: &str, bias: bool| {
            let mut v = vec![format!("{n}.weight")];
            if bias {
                v.push(format!("{n}.bias"));
            }
            v
        };
        let mut names = lin(&format!("{prefix}patch_embed.proj"), qwen3);
        if qwen3 {
            names.push(format!("{prefix}pos_embed.weight"));
        }
        for i in 0..cfg.depth {
            let p = format!("{prefix}blocks.{i}");
            for n in ["norm1", "norm2"] {
                names.extend(lin(&format!("{p}.{n}"), !rms));
            }
            if split_qkv {
                for n in ["q", "k", "v"] {
                    names.extend(lin(&format!("{p}.attn.{n}"), true));
                }
            } else {
                names.extend(lin(&format!("{p}.attn.qkv"), true));
            }
            names.extend(lin(&format!("{p}.attn.proj"), true));
            let mlp: &[&str] = match (rms, qwen3) {
                (true, _) => &["gate_proj", "up_proj", "down_proj"],
                (false, true) => &["linear_fc1", "linear_fc2"],
                (false, false) => &["fc1", "fc2"],
            };
            for n in mlp {
                names.extend(lin(&format!("{p}.mlp.{n}"), true));
            }
        }
        let mut mergers = vec![format!("{prefix}merger")];
        mergers.extend((0..cfg.deepstack_visual_indexes.len()).map(|k| format!("{prefix}deepstack_merger_list.{k}")));
        for m in mergers {
            let [norm, fc1, fc2] = Merger::names(qwen3);
            names.extend(lin(&format!("{m}.{norm}"), !rms));
            names.extend(lin(&format!("{m}.{fc1}"), true));
            names.extend(lin(&format!("{m}.{fc2}"), true));
        }
        names
    }

    /// Runs the tower on the patches of one or more images.
    ///
    /// # Shapes
    /// `input.patches` `[n, patch_dim]` → `embeds` `[n / merge², out_hidden]`.
    pub fn forward(&self, gpu: &Gpu, input: &VisionInput<'_>) -> Result<VisionOutput, EngineError> {
        let cfg = &self.cfg;
        let (c, heads, hd) = (cfg.hidden_size, cfg.num_heads, cfg.head_dim());
        let unit = cfg.spatial_merge_size * cfg.spatial_merge_size;
        let n: usize = input.grids.iter().map(|[t, h, w]| t * h * w).sum();
        let m = cfg.spatial_merge_size;
        if n == 0
            || input.patches.len() != n * cfg.patch_dim()
            || input.grids.iter().any(|[t, h, w]| *t == 0 || h % m != 0 || w % m != 0)
        {
            return Err(EngineError::Input(format!(
                "vision input of {} values does not match grids {:?} of {}-value patches",
                input.patches.len(),
                input.grids,
                cfg.patch_dim()
            )));
        }
        let tokens = n / unit;
        let limit = gpu.adapter.max_storage_binding_bytes;
        let widest = (n * 3 * c * 4) as u64;
        if widest > limit {
            return Err(EngineError::TooLarge {
                what: format!("vision activations of {n} patches"),
                bytes: widest,
                limit,
            });
        }

        // Host-side index bookkeeping.
        let hw = patch_positions(input.grids, m);
        let full = frame_blocks(input.grids);
        let (order, windows) = if cfg.window_size > 0 {
            let (order, cu) = window_index(input.grids, m, cfg.window_size / m / cfg.patch_size);
            (Some(order), Some(cu))
        } else {
            (None, None)
        };
        // Qwen2.5 runs the blocks in window order: permute patch rows in groups of `unit`.
        let permute = |rows: &[u32], width: usize, data: &[f32]| -> Vec<f32> {
            let mut out = Vec::with_capacity(data.len());
            for &u in rows {
                out.extend_from_slice(&data[u as usize * unit * width..(u as usize + 1) * unit * width]);
            }
            out
        };
        let (patches, hw) = match &order {
            Some(o) => {
                let hw2: Vec<[i32; 2]> =
                    o.iter().flat_map(|&u| hw[u as usize * unit..(u as usize + 1) * unit].to_vec()).collect();
                (std::borrow::Cow::Owned(permute(o, cfg.patch_dim(), input.patches)), hw2)
            }
            None => (std::borrow::Cow::Borrowed(input.patches), hw),
        };
        let table = rope::vision_rope_table(&hw, cfg.rope_theta, hd);

        let f = 4u64;
        let buf = |label: &str, floats: usize| gpu.buffer(label, floats as u64 * f);
        let x_in = gpu.upload("vision.patches", bytemuck::cast_slice(&patches))?;
        let cos_sin = gpu.upload("vision.cos_sin", bytemuck::cast_slice(&table))?;
        let bounds_full = gpu.upload("vision.blocks", bytemuck::cast_slice(&attention::block_bounds(&full)))?;
        let bounds_window = match &windows {
            Some(cu) => Some(gpu.upload("vision.windows", bytemuck::cast_slice(&attention::block_bounds(cu)))?),
            None => None,
        };
        let x = buf("vision.x", n * c)?;
        let h = buf("vision.h", n * c)?;
        let qkv = buf("vision.qkv", n * 3 * c)?;
        let q = buf("vision.q", n * c)?;
        let k = buf("vision.k", n * c)?;
        let attn_out = buf("vision.attn", n * c)?;
        let mlp_width = if cfg.swiglu() { 2 * cfg.intermediate_size } else { cfg.intermediate_size };
        let chunk = ((MLP_CHUNK_BYTES.min(limit) / (mlp_width as u64 * f)) as usize).clamp(1, n);
        let mlp = buf("vision.mlp", chunk * mlp_width)?;
        let act = buf("vision.mlp.act", chunk * cfg.intermediate_size)?;

        let mut rec = gpu.recorder();
        // Patch embedding, after the resampled position table where there is one.
        let pos_map;
        let pos_wt;
        let out_x = match &self.pos_embed {
            Some(table) => {
                let side = (cfg.num_position_embeddings as f64).sqrt() as usize;
                let (map, wt) = position_taps(input.grids, side, m);
                pos_map = gpu.upload("vision.pos.map", bytemuck::cast_slice(&map))?;
                pos_wt = gpu.upload("vision.pos.wt", bytemuck::cast_slice(&wt))?;
                let args = GatherRows {
                    map: &pos_map,
                    wt: Some(&pos_wt),
                    src: table,
                    dst: &x,
                    entries: n as u32,
                    taps: 4,
                    dim: c as u32,
                    accumulate: false,
                };
                gather::gather_rows(&mut rec, args)?;
                OutAt::residual(c)
            }
            None => OutAt::rows(c),
        };
        self.patch_embed.forward(&mut rec, &x_in, 0, n, &x, out_x)?;

        let mut deepstack = Vec::new();
        for (i, b) in self.blocks.iter().enumerate() {
            let bounds = match &bounds_window {
                Some(w) if !cfg.fullatt_block_indexes.contains(&i) => w,
                _ => &bounds_full,
            };
            b.norm1.forward(&mut rec, &x, &h, n)?;
            b.attn.qkv.forward(&mut rec, &h, 0, n, &qkv, OutAt::rows(3 * c))?;
            let (nn, hh, dd) = (n as u32, heads as u32, hd as u32);
            let stride = 3 * c as u32;
            rope::rope(&mut rec, &qkv, rope::Src { offset: 0, stride }, &cos_sin, &q, 0, nn, hh, dd)?;
            rope::rope(&mut rec, &qkv, rope::Src { offset: c as u32, stride }, &cos_sin, &k, 0, nn, hh, dd)?;
            let packed = |buf| Rows { buf, offset: 0, stride: c as u32 };
            let v = Rows { buf: &qkv, offset: 2 * c as u32, stride };
            attention::attention_blocks(&mut rec, packed(&q), packed(&k), v, bounds, &attn_out, nn, hh, dd)?;
            b.attn.proj.forward(&mut rec, &attn_out, 0, n, &x, OutAt::residual(c))?;
            b.norm2.forward(&mut rec, &x, &h, n)?;
            for r0 in (0..n).step_by(chunk) {
                let rows = chunk.min(n - r0);
                let out = OutAt { offset: r0 * c, stride: c, accumulate: true };
                let inter = cfg.intermediate_size;
                match &b.mlp {
                    Mlp::Plain { fc1, fc2, act: a } => {
                        fc1.forward(&mut rec, &h, r0 * c, rows, &mlp, OutAt::rows(inter))?;
                        elementwise::activation(&mut rec, *a, &mlp, &act, (rows * inter) as u32)?;
                        fc2.forward(&mut rec, &act, 0, rows, &x, out)?;
                    }
                    Mlp::Gated { gate_up_proj, down_proj } => {
                        gate_up_proj.forward(&mut rec, &h, r0 * c, rows, &mlp, OutAt::rows(2 * inter))?;
                        elementwise::silu_mul(&mut rec, &mlp, &act, rows as u32, inter as u32)?;
                        down_proj.forward(&mut rec, &act, 0, rows, &x, out)?;
                    }
                }
            }
            if let Some(k) = cfg.deepstack_visual_indexes.iter().position(|&t| t == i) {
                let out = buf("vision.deepstack", tokens * cfg.out_hidden_size)?;
                self.deepstack_merger_list[k].forward(&mut rec, cfg, &x, &h, &qkv, &out, n)?;
                deepstack.push(out);
            }
        }
        let embeds = buf("vision.embeds", tokens * cfg.out_hidden_size)?;
        self.merger.forward(&mut rec, cfg, &x, &h, &qkv, &embeds, n)?;
        rec.submit()?;
        let unit_of_row = order.unwrap_or_else(|| (0..tokens as u32).collect());
        Ok(VisionOutput { embeds, deepstack, tokens, unit_of_row })
    }
}

impl Merger {
    /// Tensor names of (norm, fc1, fc2) under a merger.
    fn names(qwen3: bool) -> [&'static str; 3] {
        if qwen3 {
            ["norm", "linear_fc1", "linear_fc2"]
        } else {
            ["ln_q", "mlp.0", "mlp.2"]
        }
    }

    async fn load<S: ByteSource>(
        l: &mut Loader<'_, S>,
        cfg: &VisionConfig,
        prefix: &str,
        postshuffle: bool,
    ) -> Result<Self, EngineError> {
        let qwen3 = cfg.qwen3();
        let wide = cfg.hidden_size * cfg.spatial_merge_size * cfg.spatial_merge_size;
        let [norm, fc1, fc2] = Self::names(qwen3);
        let norm_dim = if postshuffle { wide } else { cfg.hidden_size };
        Ok(Merger {
            norm: Norm::load(l, &format!("{prefix}.{norm}"), norm_dim, EPS, cfg.swiglu()).await?,
            postshuffle,
            fc1: Linear::load(l, &format!("{prefix}.{fc1}"), wide, wide, true).await?,
            fc2: Linear::load(l, &format!("{prefix}.{fc2}"), wide, cfg.out_hidden_size, true).await?,
        })
    }

    /// `x` `[n, hidden]` → `out` `[n / merge², out_hidden]`; `normed` `[n, hidden]` and `mid`
    /// (at least `[n / merge², 2 · merge² · hidden]`) are scratch.
    #[allow(clippy::too_many_arguments)]
    fn forward(
        &self,
        rec: &mut Recorder<'_>,
        cfg: &VisionConfig,
        x: &wgpu::Buffer,
        normed: &wgpu::Buffer,
        mid: &wgpu::Buffer,
        out: &wgpu::Buffer,
        n: usize,
    ) -> Result<(), EngineError> {
        let unit = cfg.spatial_merge_size * cfg.spatial_merge_size;
        let (tokens, wide) = (n / unit, cfg.hidden_size * unit);
        // [n, hidden] and [n / unit, unit · hidden] are the same memory.
        self.norm.forward(rec, x, normed, if self.postshuffle { tokens } else { n })?;
        self.fc1.forward(rec, normed, 0, tokens, mid, OutAt::rows(wide))?;
        elementwise::activation(rec, Act::Gelu, mid, normed, (tokens * wide) as u32)?;
        self.fc2.forward(rec, normed, 0, tokens, out, OutAt::rows(cfg.out_hidden_size))
    }
}

/// The `(h, w)` patch coordinates of every patch, in merge-block order, each image's frames
/// repeating its grid (`get_vision_position_ids`).
pub fn patch_positions(grids: &[[usize; 3]], merge: usize) -> Vec<[i32; 2]> {
    let mut out = Vec::new();
    for &[t, h, w] in grids {
        for _ in 0..t {
            for by in 0..h / merge {
                for bx in 0..w / merge {
                    for my in 0..merge {
                        for mx in 0..merge {
                            out.push([(by * merge + my) as i32, (bx * merge + mx) as i32]);
                        }
                    }
                }
            }
        }
    }
    out
}

/// `cu_seqlens` of full attention: one block per frame of each image.
pub fn frame_blocks(grids: &[[usize; 3]]) -> Vec<u32> {
    let mut cu = vec![0u32];
    for &[t, h, w] in grids {
        for _ in 0..t {
            cu.push(cu[cu.len() - 1] + (h * w) as u32);
        }
    }
    cu
}

/// Qwen2.5-VL's `get_vision_window_index`: the merged tokens in window order (windows of
/// `side` × `side` merged tokens, row-major, the grid padded to whole windows) and the
/// `cu_seqlens` of the windows in patches.
pub fn window_index(grids: &[[usize; 3]], merge: usize, side: usize) -> (Vec<u32>, Vec<u32>) {
    let unit = (merge * merge) as u32;
    let mut order = Vec::new();
    let mut cu = vec![0u32];
    let mut base = 0u32;
    for &[t, h, w] in grids {
        let (gh, gw) = (h / merge, w / merge);
        let (nh, nw) = (gh.div_ceil(side), gw.div_ceil(side));
        for f in 0..t {
            for wy in 0..nh {
                for wx in 0..nw {
                    let mut count = 0;
                    for y in wy * side..((wy + 1) * side).min(gh) {
                        for x in wx * side..((wx + 1) * side).min(gw) {
                            order.push(base + (f * gh * gw + y * gw + x) as u32);
                            count += 1;
                        }
                    }
                    if count > 0 {
                        cu.push(cu[cu.len() - 1] + count * unit);
                    }
                }
            }
        }
        base += (t * gh * gw) as u32;
    }
    (order, cu)
}

/// Qwen3-VL's resampling of the `side × side` position table onto each patch grid: bilinear
/// with aligned corners (`torch.linspace(0, side − 1, h)`), as four (row, weight) taps per
/// patch in merge-block order. Returns the gather map (`[patch, 1 + 4]`: destination, taps)
/// and the weights `[patch, 4]`.
pub fn position_taps(grids: &[[usize; 3]], side: usize, merge: usize) -> (Vec<u32>, Vec<f32>) {
    let axis = |i: usize, len: usize| -> (usize, usize, f32) {
        let src = if len > 1 { i as f32 * (side - 1) as f32 / (len - 1) as f32 } else { 0.0 };
        let lo = src.floor();
        let frac = src - lo;
        let lo = lo as usize;
        (lo.min(side - 1), (lo + 1).min(side - 1), frac)
    };
    let (mut map, mut wt) = (Vec::new(), Vec::new());
    let hw = patch_positions(grids, merge);
    let mut sizes = Vec::new();
    for &[t, h, w] in grids {
        sizes.extend(std::iter::repeat_n((h, w), t * h * w));
    }
    for (p, ([y, x], (h, w))) in hw.iter().zip(sizes).enumerate() {
        let (y0, y1, fy) = axis(*y as usize, h);
        let (x0, x1, fx) = axis(*x as usize, w);
        map.push(p as u32);
        for (r, c) in [(y0, x0), (y0, x1), (y1, x0), (y1, x1)] {
            map.push((r * side + c) as u32);
        }
        wt.extend_from_slice(&[(1.0 - fy) * (1.0 - fx), (1.0 - fy) * fx, fy * (1.0 - fx), fy * fx]);
    }
    (map, wt)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_index_matches_transformers() {
        // get_vision_window_index for grid (1, 12, 20), merge 2, window 112, patch 14: merged
        // grid 6×10 in windows of 4 → 2 × 3 windows of 16, 16, 8, 8, 8, 4 merged tokens.
        let (order, cu) = window_index(&[[1, 12, 20]], 2, 4);
        assert_eq!(cu, [0, 64, 128, 160, 192, 224, 240]);
        assert_eq!(&order[..6], &[0, 1, 2, 3, 10, 11]);
        assert_eq!(&order[16..20], &[4, 5, 6, 7]);
        assert_eq!(&order[32..36], &[8, 9, 18, 19]);
        let mut sorted = order.clone();
        sorted.sort();
        assert_eq!(sorted, (0..60).collect::<Vec<_>>());
    }

    #[test]
    fn positions_follow_merge_blocks() {
        let hw = patch_positions(&[[1, 4, 4]], 2);
        assert_eq!(&hw[..6], &[[0, 0], [0, 1], [1, 0], [1, 1], [0, 2], [0, 3]]);
        assert_eq!(frame_blocks(&[[1, 4, 4], [2, 2, 6]]), [0, 16, 28, 40]);
    }

    #[test]
    fn position_taps_hit_the_corners() {
        let (map, wt) = position_taps(&[[1, 2, 4]], 8, 2);
        // Patch 0 is (0, 0): the table's first entry with weight 1.
        assert_eq!((map[1], wt[0]), (0, 1.0));
        // The last patch in merge order is (1, 3): the table's far corner (7, 7) = 63.
        let last = map.len() / 5 - 1;
        assert_eq!(map[last * 5 + 1], 63);
        assert!((wt[last * 4] - 1.0).abs() < 1e-6);
    }
}
