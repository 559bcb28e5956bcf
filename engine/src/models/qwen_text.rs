//! The Qwen2-VL / Qwen2.5-VL / Qwen3-VL text towers (transformers' `Qwen2VLTextModel`,
//! `Qwen2_5_VLTextModel`, `Qwen3VLTextModel`): pre-norm decoder layers with grouped-query
//! attention, M-RoPE, a SiLU-gated MLP, and for Qwen3 a per-head RMSNorm on q and k.
//! The variants differ only by config: q/k/v biases, q/k norm, interleaved rope sections.

use crate::error::EngineError;
use crate::formats::hf_config::TextConfig;
use crate::gpu::{Gpu, Recorder, StepCache};
use crate::kernels::gather::{self, GatherRows};
use crate::kernels::{attention, elementwise, embedding, rope};
use crate::load::ByteSource;
use crate::models::layers::{KvCache, Linear, Loader, OutAt, RmsNorm, Weight};

/// Self-attention; fields are the checkpoint names under `layers.{i}.self_attn.`.
pub struct Attention {
    q_proj: Linear,
    k_proj: Linear,
    v_proj: Linear,
    o_proj: Linear,
    q_norm: Option<RmsNorm>,
    k_norm: Option<RmsNorm>,
}

/// The gated MLP under `layers.{i}.mlp.`: `down(silu(gate(x)) · up(x))`. `gate_proj` and
/// `up_proj` are stacked by rows at load into one weight, so both run as one matvec.
pub struct Mlp {
    gate_up_proj: Linear,
    down_proj: Linear,
}

/// One decoder layer under `layers.{i}.`.
pub struct DecoderLayer {
    input_layernorm: RmsNorm,
    self_attn: Attention,
    post_attention_layernorm: RmsNorm,
    mlp: Mlp,
}

/// The text tower: `embed_tokens`, the layers, the final `norm` and the LM head (tied to the
/// embedding when the config says so).
pub struct TextModel {
    pub cfg: TextConfig,
    pub embed_tokens: Weight,
    layers: Vec<DecoderLayer>,
    norm: RmsNorm,
    lm_head: Option<Linear>,
    inv_freq: Vec<f32>,
}

/// The tokens of one forward step.
#[derive(Clone, Copy)]
pub struct Step<'a> {
    pub ids: &'a [u32],
    /// `[3, n]`: the T, H and W position rows of M-RoPE.
    pub positions: &'a [i32],
    /// Cache position of the first token (tokens already in the cache).
    pub past: usize,
    /// Compute the last token's logits.
    pub logits: bool,
    /// Vision-tower rows that replace the embeddings of this step's image tokens.
    pub vision: Option<StepVision<'a>>,
}

/// The image tokens of one step and where their embeddings come from.
#[derive(Clone, Copy)]
pub struct StepVision<'a> {
    /// Merger output `[rows, hidden]`.
    pub embeds: &'a wgpu::Buffer,
    /// Qwen3-VL DeepStack features, each `[rows, hidden]`, added after decoder layer k.
    pub deepstack: &'a [wgpu::Buffer],
    /// `[entries, 2]`: (token index in this step, row of `embeds`).
    pub map: &'a [u32],
}

/// M-RoPE positions `[3, n]` of `n` text tokens from cache position `past`: for text, the
/// T, H and W rows are all the token's position (`get_rope_index`).
pub fn text_positions(past: usize, n: usize) -> Vec<i32> {
    (0..3).flat_map(|_| (0..n).map(move |t| (past + t) as i32)).collect()
}

/// Activation buffers for up to `max_tokens` tokens per step.
pub struct Scratch {
    pub max_tokens: usize,
    ids: wgpu::Buffer,
    /// `[max_tokens, 2]` u32: the image-token map of a step (`StepVision::map`).
    vision_map: wgpu::Buffer,
    /// `[2, tokens, head_dim / 2]` rotary cos/sin of this step.
    cos_sin: wgpu::Buffer,
    x: wgpu::Buffer,
    h: wgpu::Buffer,
    q: wgpu::Buffer,
    qn: wgpu::Buffer,
    qr: wgpu::Buffer,
    k: wgpu::Buffer,
    kn: wgpu::Buffer,
    attn: wgpu::Buffer,
    /// Split-key partial results of attention.
    attn_partial: wgpu::Buffer,
    gate_up: wgpu::Buffer,
    act: wgpu::Buffer,
    pub logits: wgpu::Buffer,
    /// Bind groups of the last step, reused while steps look alike (decode).
    step_cache: std::cell::RefCell<StepCache>,
}

impl TextModel {
    /// Loads the text tower from tensors named `{prefix}embed_tokens.weight`, `{prefix}layers.N.…`,
    /// `{prefix}norm.weight` and `lm_head.weight` (when untied).
    pub async fn load<S: ByteSource>(
        l: &mut Loader<'_, S>,
        cfg: &TextConfig,
        prefix: &str,
    ) -> Result<Self, EngineError> {
        let (hidden, hd) = (cfg.hidden_size, cfg.head_dim);
        let (q_dim, kv_dim) = (cfg.num_attention_heads * hd, cfg.num_key_value_heads * hd);
        let embed_tokens = l.weight(&format!("{prefix}embed_tokens.weight"), cfg.vocab_size, hidden).await?;
        let mut layers = Vec::with_capacity(cfg.num_hidden_layers);
        for i in 0..cfg.num_hidden_layers {
            let p = format!("{prefix}layers.{i}");
            let a = format!("{p}.self_attn");
            let bias = cfg.attention_bias;
            let self_attn = Attention {
                q_proj: Linear::load(l, &format!("{a}.q_proj"), hidden, q_dim, bias).await?,
                k_proj: Linear::load(l, &format!("{a}.k_proj"), hidden, kv_dim, bias).await?,
                v_proj: Linear::load(l, &format!("{a}.v_proj"), hidden, kv_dim, bias).await?,
                o_proj: Linear::load(l, &format!("{a}.o_proj"), q_dim, hidden, false).await?,
                q_norm: if cfg.qk_norm {
                    Some(RmsNorm::load(l, &format!("{a}.q_norm"), hd, cfg.rms_norm_eps).await?)
                } else {
                    None
                },
                k_norm: if cfg.qk_norm {
                    Some(RmsNorm::load(l, &format!("{a}.k_norm"), hd, cfg.rms_norm_eps).await?)
                } else {
                    None
                },
            };
            let m = format!("{p}.mlp");
            let inter = cfg.intermediate_size;
            layers.push(DecoderLayer {
                input_layernorm: RmsNorm::load(l, &format!("{p}.input_layernorm"), hidden, cfg.rms_norm_eps).await?,
                self_attn,
                post_attention_layernorm: RmsNorm::load(
                    l,
                    &format!("{p}.post_attention_layernorm"),
                    hidden,
                    cfg.rms_norm_eps,
                )
                .await?,
                mlp: Mlp {
                    gate_up_proj: Linear::load_stacked(
                        l,
                        &[&format!("{m}.gate_proj"), &format!("{m}.up_proj")],
                        hidden,
                        inter,
                        false,
                    )
                    .await?,
                    down_proj: Linear::load(l, &format!("{m}.down_proj"), inter, hidden, false).await?,
                },
            });
        }
        let norm = RmsNorm::load(l, &format!("{prefix}norm"), hidden, cfg.rms_norm_eps).await?;
        let lm_head = if cfg.tie_word_embeddings {
            None
        } else {
            Some(Linear::load(l, "lm_head", hidden, cfg.vocab_size, false).await?)
        };
        let inv_freq = rope::inv_freq(cfg.rope_theta, hd);
        Ok(TextModel { cfg: cfg.clone(), embed_tokens, layers, norm, lm_head, inv_freq })
    }

    /// Names of every tensor `load` reads, for progress totals and checks.
    pub fn tensor_names(cfg: &TextConfig, prefix: &str) -> Vec<String> {
        let mut names = vec![format!("{prefix}embed_tokens.weight"), format!("{prefix}norm.weight")];
        for i in 0..cfg.num_hidden_layers {
            let p = format!("{prefix}layers.{i}");
            for proj in ["q_proj", "k_proj", "v_proj"] {
                names.push(format!("{p}.self_attn.{proj}.weight"));
                if cfg.attention_bias {
                    names.push(format!("{p}.self_attn.{proj}.bias"));
                }
            }
            names.push(format!("{p}.self_attn.o_proj.weight"));
            if cfg.qk_norm {
                names.push(format!("{p}.self_attn.q_norm.weight"));
                names.push(format!("{p}.self_attn.k_norm.weight"));
            }
            for n in ["input_layernorm", "post_attention_layernorm"] {
                names.push(format!("{p}.{n}.weight"));
            }
            for proj in ["gate_proj", "up_proj", "down_proj"] {
                names.push(format!("{p}.mlp.{proj}.weight"));
            }
        }
        if !cfg.tie_word_embeddings {
            names.push("lm_head.weight".into());
        }
        names
    }

    /// Weight bytes one decoded token reads: every layer's matrices and the LM head (the
    /// embedding gather reads one row).
    pub fn decode_weight_bytes(&self) -> u64 {
        let head = self.lm_head.as_ref().map_or(&self.embed_tokens, |h| &h.weight).bytes();
        let layers: u64 = self
            .layers
            .iter()
            .map(|l| {
                let a = &l.self_attn;
                let m = &l.mlp;
                [&a.q_proj, &a.k_proj, &a.v_proj, &a.o_proj, &m.gate_up_proj, &m.down_proj]
                    .iter()
                    .map(|lin| lin.weight.bytes())
                    .sum::<u64>()
            })
            .sum();
        head + layers
    }

    /// Refuses, before any weight is read, a context or prefill chunk whose KV cache or MLP
    /// activations exceed what one storage binding of this adapter holds (the buffers that
    /// grow with the user's choices; the others are a few megabytes).
    pub fn check_limits(cfg: &TextConfig, gpu: &Gpu, capacity: usize, max_tokens: usize) -> Result<(), EngineError> {
        let limit = gpu.adapter.max_storage_binding_bytes.min(gpu.adapter.max_buffer_bytes);
        let t = max_tokens as u64 * 4;
        let needs = [
            ("the KV cache of one layer".to_string(), (capacity * cfg.num_key_value_heads * cfg.head_dim * 4) as u64),
            ("the MLP activations of a prefill chunk".to_string(), 2 * t * cfg.intermediate_size as u64),
        ];
        for (what, bytes) in needs {
            if bytes > limit {
                return Err(EngineError::TooLarge {
                    what: format!("{what} (context {capacity}, prefill chunk {max_tokens}; lower them)"),
                    bytes,
                    limit,
                });
            }
        }
        Ok(())
    }

    /// The KV cache of `capacity` tokens; [`Self::check_limits`] tells beforehand whether a
    /// layer's buffer fits one storage binding.
    pub fn new_cache(&self, gpu: &Gpu, capacity: usize) -> Result<KvCache, EngineError> {
        let kv_dim = self.cfg.num_key_value_heads * self.cfg.head_dim;
        KvCache::new(gpu, self.cfg.num_hidden_layers, capacity, kv_dim)
    }

    pub fn new_scratch(&self, gpu: &Gpu, max_tokens: usize) -> Result<Scratch, EngineError> {
        let c = &self.cfg;
        let t = max_tokens as u64 * 4;
        let q = t * (c.num_attention_heads * c.head_dim) as u64;
        let kv = t * (c.num_key_value_heads * c.head_dim) as u64;
        let hidden = t * c.hidden_size as u64;
        let inter = t * c.intermediate_size as u64;
        Ok(Scratch {
            max_tokens,
            ids: gpu.buffer("ids", t)?,
            vision_map: gpu.buffer("vision_map", 2 * t)?,
            cos_sin: gpu.buffer("cos_sin", t * c.head_dim as u64)?,
            x: gpu.buffer("x", hidden)?,
            h: gpu.buffer("h", hidden)?,
            q: gpu.buffer("q", q)?,
            qn: gpu.buffer("q.norm", q)?,
            qr: gpu.buffer("q.rope", q)?,
            k: gpu.buffer("k", kv)?,
            kn: gpu.buffer("k.norm", kv)?,
            attn: gpu.buffer("attn", q)?,
            attn_partial: gpu.buffer(
                "attn.partial",
                attention::partial_len(max_tokens, c.num_attention_heads, c.head_dim) as u64 * 4,
            )?,
            gate_up: gpu.buffer("gate_up", 2 * inter)?,
            act: gpu.buffer("act", inter)?,
            logits: gpu.buffer("logits", c.vocab_size as u64 * 4)?,
            step_cache: Default::default(),
        })
    }

    /// Runs `step.ids` (at most `s.max_tokens`), appending their keys and values to `kv`;
    /// with `step.logits`, the last token's logits land in `s.logits`.
    ///
    /// # Shapes
    /// `ids` `[n]`; `positions` `[3, n]` (T, H, W rows of M-RoPE) → `s.logits` `[vocab]`.
    pub fn forward(&self, gpu: &Gpu, step: &Step<'_>, kv: &KvCache, s: &Scratch) -> Result<(), EngineError> {
        let Step { ids, positions, past, logits, vision } = *step;
        let n = ids.len();
        if n == 0 || n > s.max_tokens || positions.len() != 3 * n {
            return Err(EngineError::Op {
                op: "text forward".into(),
                message: format!("{n} tokens, {} positions", positions.len()),
            });
        }
        if past + n > kv.capacity {
            return Err(EngineError::ContextFull { tokens: past + n, context: kv.capacity });
        }
        let vision = vision.filter(|v| !v.map.is_empty());
        if let Some(v) = vision {
            if v.map.len() % 2 != 0 || v.map.chunks(2).any(|e| e[0] as usize >= n) {
                return Err(EngineError::Op {
                    op: "text forward".into(),
                    message: "image map outside the step".into(),
                });
            }
            gpu.write(&s.vision_map, 0, bytemuck::cast_slice(v.map));
        }
        let place = |rec: &mut Recorder<'_>, v: &StepVision<'_>, src: &wgpu::Buffer, accumulate: bool| {
            let args = GatherRows {
                map: &s.vision_map,
                wt: None,
                src,
                dst: &s.x,
                entries: (v.map.len() / 2) as u32,
                taps: 1,
                dim: self.cfg.hidden_size as u32,
                accumulate,
            };
            gather::gather_rows(rec, args)
        };
        gpu.write(&s.ids, 0, bytemuck::cast_slice(ids));
        let layout = rope::MropeLayout { section: self.cfg.mrope_section, interleaved: self.cfg.mrope_interleaved };
        gpu.write(&s.cos_sin, 0, bytemuck::cast_slice(&rope::rope_table(positions, &self.inv_freq, layout)));
        let c = &self.cfg;
        let mut rec = gpu.recorder();
        for shard in &self.embed_tokens.shards {
            embedding::embedding(
                &mut rec,
                &s.ids,
                n as u32,
                &shard.buf,
                self.embed_tokens.dtype,
                shard.row_start as u32,
                shard.rows as u32,
                c.hidden_size as u32,
                &s.x,
            )?;
        }
        if let Some(v) = &vision {
            place(&mut rec, v, v.embeds, false)?;
        }
        for (i, (layer, (k, v))) in self.layers.iter().zip(kv.k.iter().zip(&kv.v)).enumerate() {
            layer.forward(&mut rec, self, s, k, v, n, past)?;
            if let Some(feature) = vision.as_ref().and_then(|v| v.deepstack.get(i).map(|f| (v, f))) {
                place(&mut rec, feature.0, feature.1, true)?;
            }
        }
        if logits {
            self.norm.forward(&mut rec, &s.x, &s.h, n)?;
            let last = (n - 1) * c.hidden_size;
            let out = OutAt::rows(c.vocab_size);
            match &self.lm_head {
                Some(head) => head.forward(&mut rec, &s.h, last, 1, &s.logits, out)?,
                None => self.embed_tokens.linear(&mut rec, &s.h, last, 1, &[], &s.logits, out)?,
            }
        }
        rec.submit_cached(&mut s.step_cache.borrow_mut())
    }
}

impl DecoderLayer {
    /// `x += o_proj(attn(rope(q), rope(k), v))` on `rmsnorm(x)`, then `x += mlp(rmsnorm(x))`;
    /// both residual adds happen in the epilogue of the output projections.
    #[allow(clippy::too_many_arguments)] // private; the cache halves and sizes of one step
    fn forward(
        &self,
        rec: &mut Recorder<'_>,
        m: &TextModel,
        s: &Scratch,
        k_cache: &wgpu::Buffer,
        v_cache: &wgpu::Buffer,
        n: usize,
        past: usize,
    ) -> Result<(), EngineError> {
        let c = &m.cfg;
        let (heads, kv_heads, hd) = (c.num_attention_heads, c.num_key_value_heads, c.head_dim);
        let kv_dim = kv_heads * hd;
        let a = &self.self_attn;
        self.input_layernorm.forward(rec, &s.x, &s.h, n)?;
        a.q_proj.forward(rec, &s.h, 0, n, &s.q, OutAt::rows(heads * hd))?;
        a.k_proj.forward(rec, &s.h, 0, n, &s.k, OutAt::rows(kv_dim))?;
        // Values go straight into the cache after the `past` entries.
        a.v_proj.forward(
            rec,
            &s.h,
            0,
            n,
            v_cache,
            OutAt { offset: past * kv_dim, stride: kv_dim, accumulate: false },
        )?;
        let (q_in, k_in) = match (&a.q_norm, &a.k_norm) {
            (Some(qn), Some(kn)) => {
                qn.forward(rec, &s.q, &s.qn, n * heads)?;
                kn.forward(rec, &s.k, &s.kn, n * kv_heads)?;
                (&s.qn, &s.kn)
            }
            _ => (&s.q, &s.k),
        };
        let (q_src, k_src) =
            (rope::Src::packed(heads as u32, hd as u32), rope::Src::packed(kv_heads as u32, hd as u32));
        rope::rope(rec, q_in, q_src, &s.cos_sin, &s.qr, 0, n as u32, heads as u32, hd as u32)?;
        let k_dst = (past * kv_dim) as u32;
        rope::rope(rec, k_in, k_src, &s.cos_sin, k_cache, k_dst, n as u32, kv_heads as u32, hd as u32)?;
        let attend = attention::Attend {
            q: &s.qr,
            k: k_cache,
            v: v_cache,
            partial: &s.attn_partial,
            out: &s.attn,
            tokens: n as u32,
            keys: attention::Keys::Causal { past: past as u32 },
            heads: heads as u32,
            kv_heads: kv_heads as u32,
            head_dim: hd as u32,
        };
        attention::attention(rec, attend)?;
        a.o_proj.forward(rec, &s.attn, 0, n, &s.x, OutAt::residual(c.hidden_size))?;

        self.post_attention_layernorm.forward(rec, &s.x, &s.h, n)?;
        let inter = c.intermediate_size;
        self.mlp.gate_up_proj.forward(rec, &s.h, 0, n, &s.gate_up, OutAt::rows(2 * inter))?;
        elementwise::silu_mul(rec, &s.gate_up, &s.act, n as u32, inter as u32)?;
        self.mlp.down_proj.forward(rec, &s.act, 0, n, &s.x, OutAt::residual(c.hidden_size))
    }
}
