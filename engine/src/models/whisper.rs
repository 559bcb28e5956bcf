//! Whisper (transformers' `WhisperForConditionalGeneration`; Radford et al., "Robust Speech
//! Recognition via Large-Scale Weak Supervision", §2.2): a log-mel window → two convolutions
//! with GELU (the second halves the frame rate) → sinusoidal positions → pre-LN encoder
//! blocks with non-causal attention → LayerNorm; a decoder of learned positions and pre-LN
//! blocks with causal self-attention, cross-attention on the encoder output and a GELU MLP,
//! then LayerNorm and the head tied to the token embedding.
//!
//! The cross-attention keys and values are computed once per window ([`CrossKv`]); the
//! self-attention cache ([`KvCache`]) grows one step at a time. Both are passed in, so one set
//! of weights serves several utterances.

use crate::error::{EngineError, LoadError};
use crate::formats::whisper::WhisperConfig;
use crate::gpu::{Gpu, Recorder, StepCache};
use crate::kernels::attention::{self, Attend, Keys, Rows};
use crate::kernels::conv::{self, Geometry, Layout};
use crate::kernels::elementwise::{self, Act};
use crate::kernels::embedding;
use crate::kernels::gather::{self, GatherRows};
use crate::load::ByteSource;
use crate::models::layers::{KvCache, LayerNorm, Linear, Loader, OutAt, Weight};

/// LayerNorm epsilon of every Whisper norm (`nn.LayerNorm` default).
const EPS: f32 = 1e-5;
/// Frames of one 30 s window of features.
pub const WINDOW_FRAMES: usize = 3000;

/// Attention under `self_attn.` or `encoder_attn.`: q and v with bias, k without.
struct Attention {
    q_proj: Linear,
    k_proj: Linear,
    v_proj: Linear,
    out_proj: Linear,
}

impl Attention {
    async fn load<S: ByteSource>(l: &mut Loader<'_, S>, p: &str, d: usize) -> Result<Self, EngineError> {
        Ok(Attention {
            q_proj: Linear::load(l, &format!("{p}.q_proj"), d, d, true).await?,
            k_proj: Linear::load(l, &format!("{p}.k_proj"), d, d, false).await?,
            v_proj: Linear::load(l, &format!("{p}.v_proj"), d, d, true).await?,
            out_proj: Linear::load(l, &format!("{p}.out_proj"), d, d, true).await?,
        })
    }
}

/// The MLP of a block: `fc2(gelu(fc1(x)))`.
struct Mlp {
    fc1: Linear,
    fc2: Linear,
    ffn: usize,
}

impl Mlp {
    async fn load<S: ByteSource>(l: &mut Loader<'_, S>, p: &str, d: usize, ffn: usize) -> Result<Self, EngineError> {
        Ok(Mlp {
            fc1: Linear::load(l, &format!("{p}.fc1"), d, ffn, true).await?,
            fc2: Linear::load(l, &format!("{p}.fc2"), ffn, d, true).await?,
            ffn,
        })
    }

    /// `x += fc2(gelu(fc1(h)))` over `n` rows; `mid` and `act` hold `[n, ffn]`.
    fn forward(
        &self,
        rec: &mut Recorder<'_>,
        h: &wgpu::Buffer,
        bufs: [&wgpu::Buffer; 3],
        n: usize,
        d: usize,
    ) -> Result<(), EngineError> {
        let [mid, act, x] = bufs;
        self.fc1.forward(rec, h, 0, n, mid, OutAt::rows(self.ffn))?;
        elementwise::activation(rec, Act::Gelu, mid, act, (n * self.ffn) as u32)?;
        self.fc2.forward(rec, act, 0, n, x, OutAt::residual(d))
    }
}

/// An encoder block under `model.encoder.layers.{i}.`.
struct EncoderLayer {
    self_attn_layer_norm: LayerNorm,
    self_attn: Attention,
    final_layer_norm: LayerNorm,
    mlp: Mlp,
}

/// A decoder block under `model.decoder.layers.{i}.`.
struct DecoderLayer {
    self_attn_layer_norm: LayerNorm,
    self_attn: Attention,
    encoder_attn_layer_norm: LayerNorm,
    encoder_attn: Attention,
    final_layer_norm: LayerNorm,
    mlp: Mlp,
}

/// A convolution of the stem, its kernel read as the Linear `[c_out, c_in · k]`.
struct Conv1d {
    linear: Linear,
    geo: Geometry,
}

/// A loaded Whisper.
pub struct WhisperModel {
    pub cfg: WhisperConfig,
    conv1: Conv1d,
    conv2: Conv1d,
    /// `model.encoder.embed_positions.weight` `[1500, d]` f32.
    encoder_positions: wgpu::Buffer,
    encoder_layers: Vec<EncoderLayer>,
    encoder_norm: LayerNorm,
    embed_tokens: Weight,
    /// `model.decoder.embed_positions.weight` `[max_target_positions, d]` f32.
    decoder_positions: wgpu::Buffer,
    decoder_layers: Vec<DecoderLayer>,
    decoder_norm: LayerNorm,
}

/// The encoder's keys and values for every decoder layer: `[1500, d]` each.
pub struct CrossKv {
    k: Vec<wgpu::Buffer>,
    v: Vec<wgpu::Buffer>,
}

/// Activation buffers of the decoder for up to `max_tokens` tokens per step.
pub struct DecoderScratch {
    pub max_tokens: usize,
    ids: wgpu::Buffer,
    pos_map: wgpu::Buffer,
    x: wgpu::Buffer,
    h: wgpu::Buffer,
    q: wgpu::Buffer,
    attn: wgpu::Buffer,
    partial: wgpu::Buffer,
    mid: wgpu::Buffer,
    act: wgpu::Buffer,
    /// `[vocab]` logits of the step's last token.
    pub logits: wgpu::Buffer,
    step_cache: std::cell::RefCell<StepCache>,
}

impl WhisperModel {
    pub async fn load<S: ByteSource>(l: &mut Loader<'_, S>, cfg: &WhisperConfig) -> Result<Self, EngineError> {
        if cfg.scale_embedding {
            return Err(
                LoadError::Config("scale_embedding is not supported (no Whisper checkpoint sets it)".into()).into()
            );
        }
        let d = cfg.d_model;
        let conv = |c_in: usize, stride: usize| Geometry {
            in_channels: c_in,
            kernel_size: 3,
            stride,
            padding: 1,
            dilation: 1,
        };
        let conv1 = Conv1d {
            linear: Linear::load(l, "model.encoder.conv1", cfg.num_mel_bins * 3, d, true).await?,
            geo: conv(cfg.num_mel_bins, 1),
        };
        let conv2 = Conv1d { linear: Linear::load(l, "model.encoder.conv2", d * 3, d, true).await?, geo: conv(d, 2) };
        let encoder_positions = l.table("model.encoder.embed_positions.weight", cfg.max_source_positions, d).await?;
        let mut encoder_layers = Vec::with_capacity(cfg.encoder_layers);
        for i in 0..cfg.encoder_layers {
            let p = format!("model.encoder.layers.{i}");
            encoder_layers.push(EncoderLayer {
                self_attn_layer_norm: LayerNorm::load(l, &format!("{p}.self_attn_layer_norm"), d, EPS).await?,
                self_attn: Attention::load(l, &format!("{p}.self_attn"), d).await?,
                final_layer_norm: LayerNorm::load(l, &format!("{p}.final_layer_norm"), d, EPS).await?,
                mlp: Mlp::load(l, &p, d, cfg.encoder_ffn_dim).await?,
            });
        }
        let encoder_norm = LayerNorm::load(l, "model.encoder.layer_norm", d, EPS).await?;
        let embed_tokens = l.weight("model.decoder.embed_tokens.weight", cfg.vocab_size, d).await?;
        let decoder_positions = l.table("model.decoder.embed_positions.weight", cfg.max_target_positions, d).await?;
        let mut decoder_layers = Vec::with_capacity(cfg.decoder_layers);
        for i in 0..cfg.decoder_layers {
            let p = format!("model.decoder.layers.{i}");
            decoder_layers.push(DecoderLayer {
                self_attn_layer_norm: LayerNorm::load(l, &format!("{p}.self_attn_layer_norm"), d, EPS).await?,
                self_attn: Attention::load(l, &format!("{p}.self_attn"), d).await?,
                encoder_attn_layer_norm: LayerNorm::load(l, &format!("{p}.encoder_attn_layer_norm"), d, EPS).await?,
                encoder_attn: Attention::load(l, &format!("{p}.encoder_attn"), d).await?,
                final_layer_norm: LayerNorm::load(l, &format!("{p}.final_layer_norm"), d, EPS).await?,
                mlp: Mlp::load(l, &p, d, cfg.decoder_ffn_dim).await?,
            });
        }
        let decoder_norm = LayerNorm::load(l, "model.decoder.layer_norm", d, EPS).await?;
        Ok(WhisperModel {
            cfg: cfg.clone(),
            conv1,
            conv2,
            encoder_positions,
            encoder_layers,
            encoder_norm,
            embed_tokens,
            decoder_positions,
            decoder_layers,
            decoder_norm,
        })
    }

    /// Names of every tensor `load` reads (`proj_out` is tied to the embedding).
    pub fn tensor_names(cfg: &WhisperConfig) -> Vec<String> {
        let mut names = Vec::new();
        let lin = |names: &mut Vec<String>, p: &str, bias: bool| {
            names.push(format!("{p}.weight"));
            if bias {
                names.push(format!("{p}.bias"));
            }
        };
        let attn = |names: &mut Vec<String>, p: &str| {
            for (n, b) in [("q_proj", true), ("k_proj", false), ("v_proj", true), ("out_proj", true)] {
                lin(names, &format!("{p}.{n}"), b);
            }
        };
        for c in ["conv1", "conv2"] {
            lin(&mut names, &format!("model.encoder.{c}"), true);
        }
        names.push("model.encoder.embed_positions.weight".into());
        names.push("model.decoder.embed_positions.weight".into());
        names.push("model.decoder.embed_tokens.weight".into());
        for (side, layers) in [("encoder", cfg.encoder_layers), ("decoder", cfg.decoder_layers)] {
            for i in 0..layers {
                let p = format!("model.{side}.layers.{i}");
                lin(&mut names, &format!("{p}.self_attn_layer_norm"), true);
                attn(&mut names, &format!("{p}.self_attn"));
                if side == "decoder" {
                    lin(&mut names, &format!("{p}.encoder_attn_layer_norm"), true);
                    attn(&mut names, &format!("{p}.encoder_attn"));
                }
                lin(&mut names, &format!("{p}.final_layer_norm"), true);
                lin(&mut names, &format!("{p}.fc1"), true);
                lin(&mut names, &format!("{p}.fc2"), true);
            }
            lin(&mut names, &format!("model.{side}.layer_norm"), true);
        }
        names
    }

    /// Runs the encoder on one window and computes every decoder layer's cross-attention keys
    /// and values from its output.
    ///
    /// # Shapes
    /// `mel` `[num_mel_bins, 3000]` → the encoder output `[1500, d]` and `CrossKv`.
    pub fn encode(&self, gpu: &Gpu, mel: &[f32]) -> Result<(wgpu::Buffer, CrossKv), EngineError> {
        let c = &self.cfg;
        let (d, n, mels) = (c.d_model, c.max_source_positions, c.num_mel_bins);
        if mel.len() != mels * WINDOW_FRAMES {
            return Err(EngineError::Input(format!("{} mel values, expected {mels} × {WINDOW_FRAMES}", mel.len())));
        }
        let f = |floats: usize| floats as u64 * 4;
        let mel_buf = gpu.upload("whisper.mel", bytemuck::cast_slice(mel))?;
        let cols = gpu.buffer("whisper.cols", f(WINDOW_FRAMES * 3 * mels.max(d)))?;
        let a = gpu.buffer("whisper.conv", f(WINDOW_FRAMES * d))?;
        let b = gpu.buffer("whisper.conv.act", f(WINDOW_FRAMES * d))?;
        let x = gpu.buffer("whisper.enc.x", f(n * d))?;
        let h = gpu.buffer("whisper.enc.h", f(n * d))?;
        let [q, k, v, attn] = ["q", "k", "v", "attn"].map(|s| gpu.buffer(&format!("whisper.enc.{s}"), f(n * d)));
        let (q, k, v, attn) = (q?, k?, v?, attn?);
        let mid = gpu.buffer("whisper.enc.mlp", f(n * c.encoder_ffn_dim))?;
        let act = gpu.buffer("whisper.enc.mlp.act", f(n * c.encoder_ffn_dim))?;
        let identity: Vec<u32> = (0..n as u32).flat_map(|t| [t, t]).collect();
        let map = gpu.upload("whisper.enc.pos", bytemuck::cast_slice(&identity))?;

        let mut rec = gpu.recorder();
        // conv1 (k3, s1) + GELU on [mels, 3000], then conv2 (k3, s2) + GELU → [1500, d].
        let t1 = conv::im2col(&mut rec, &self.conv1.geo, Layout::ChannelMajor, &mel_buf, WINDOW_FRAMES, &cols)?;
        self.conv1.linear.forward(&mut rec, &cols, 0, t1, &a, OutAt::rows(d))?;
        elementwise::activation(&mut rec, Act::Gelu, &a, &b, (t1 * d) as u32)?;
        let t2 = conv::im2col(&mut rec, &self.conv2.geo, Layout::TimeMajor, &b, t1, &cols)?;
        if t2 != n {
            return Err(EngineError::Op {
                op: "whisper encoder".into(),
                message: format!("{t2} steps after the stem, expected {n}"),
            });
        }
        self.conv2.linear.forward(&mut rec, &cols, 0, t2, &a, OutAt::rows(d))?;
        elementwise::activation(&mut rec, Act::Gelu, &a, &x, (n * d) as u32)?;
        let pos = GatherRows {
            map: &map,
            wt: None,
            src: &self.encoder_positions,
            dst: &x,
            entries: n as u32,
            taps: 1,
            dim: d as u32,
            accumulate: true,
        };
        gather::gather_rows(&mut rec, pos)?;
        let (heads, hd) = (c.encoder_attention_heads as u32, (d / c.encoder_attention_heads) as u32);
        // Every step sees every step: one block of the whole window, its keys split over
        // workgroups.
        let keys = n as u32;
        let partial =
            gpu.buffer("whisper.enc.partial", f(attention::block_partial_len(n, heads as usize, hd as usize, keys)))?;
        let bounds = gpu.upload("whisper.enc.bounds", bytemuck::cast_slice(&attention::block_bounds(&[0, keys])))?;
        let rows = |buf| Rows { buf, offset: 0, stride: d as u32 };
        for layer in &self.encoder_layers {
            let at = &layer.self_attn;
            layer.self_attn_layer_norm.forward(&mut rec, &x, &h, n)?;
            at.q_proj.forward(&mut rec, &h, 0, n, &q, OutAt::rows(d))?;
            at.k_proj.forward(&mut rec, &h, 0, n, &k, OutAt::rows(d))?;
            at.v_proj.forward(&mut rec, &h, 0, n, &v, OutAt::rows(d))?;
            let qkv = [rows(&q), rows(&k), rows(&v)];
            attention::attention_blocks_split(&mut rec, qkv, &bounds, &partial, &attn, keys, heads, hd, keys)?;
            at.out_proj.forward(&mut rec, &attn, 0, n, &x, OutAt::residual(d))?;
            layer.final_layer_norm.forward(&mut rec, &x, &h, n)?;
            layer.mlp.forward(&mut rec, &h, [&mid, &act, &x], n, d)?;
        }
        let out = gpu.buffer("whisper.encoder_output", f(n * d))?;
        self.encoder_norm.forward(&mut rec, &x, &out, n)?;
        let mut cross = CrossKv { k: Vec::new(), v: Vec::new() };
        for layer in &self.decoder_layers {
            let (ck, cv) = (gpu.buffer("whisper.cross.k", f(n * d))?, gpu.buffer("whisper.cross.v", f(n * d))?);
            layer.encoder_attn.k_proj.forward(&mut rec, &out, 0, n, &ck, OutAt::rows(d))?;
            layer.encoder_attn.v_proj.forward(&mut rec, &out, 0, n, &cv, OutAt::rows(d))?;
            cross.k.push(ck);
            cross.v.push(cv);
        }
        rec.submit()?;
        Ok((out, cross))
    }

    /// A self-attention cache for `capacity` decoder positions.
    pub fn new_cache(&self, gpu: &Gpu) -> Result<KvCache, EngineError> {
        KvCache::new(gpu, self.cfg.decoder_layers, self.cfg.max_target_positions, self.cfg.d_model)
    }

    pub fn new_scratch(&self, gpu: &Gpu) -> Result<DecoderScratch, EngineError> {
        let c = &self.cfg;
        let (t, d) = (c.max_target_positions, c.d_model);
        let f = |floats: usize| floats as u64 * 4;
        let heads = c.decoder_attention_heads;
        Ok(DecoderScratch {
            max_tokens: t,
            ids: gpu.buffer("whisper.ids", f(t))?,
            pos_map: gpu.buffer("whisper.pos_map", f(2 * t))?,
            x: gpu.buffer("whisper.dec.x", f(t * d))?,
            h: gpu.buffer("whisper.dec.h", f(t * d))?,
            q: gpu.buffer("whisper.dec.q", f(t * d))?,
            attn: gpu.buffer("whisper.dec.attn", f(t * d))?,
            partial: gpu.buffer("whisper.dec.partial", f(attention::partial_len(t, heads, d / heads)))?,
            mid: gpu.buffer("whisper.dec.mlp", f(t * c.decoder_ffn_dim))?,
            act: gpu.buffer("whisper.dec.mlp.act", f(t * c.decoder_ffn_dim))?,
            logits: gpu.buffer("whisper.logits", f(c.vocab_size))?,
            step_cache: Default::default(),
        })
    }

    /// One decoder step over `ids` at cache positions `past..`: the logits of the last token
    /// land in `s.logits`.
    ///
    /// # Shapes
    /// `ids` `[n]` → `s.logits` `[vocab_size]`.
    pub fn decode(
        &self,
        gpu: &Gpu,
        ids: &[u32],
        past: usize,
        kv: &KvCache,
        cross: &CrossKv,
        s: &DecoderScratch,
    ) -> Result<(), EngineError> {
        let c = &self.cfg;
        let (n, d) = (ids.len(), c.d_model);
        if n == 0 || past + n > kv.capacity || past + n > c.max_target_positions {
            return Err(EngineError::ContextFull {
                tokens: past + n,
                context: kv.capacity.min(c.max_target_positions),
            });
        }
        if let Some(bad) = ids.iter().find(|&&id| id as usize >= c.vocab_size) {
            return Err(EngineError::Input(format!("token {bad} outside the vocabulary of {}", c.vocab_size)));
        }
        gpu.write(&s.ids, 0, bytemuck::cast_slice(ids));
        let map: Vec<u32> = (0..n as u32).flat_map(|t| [t, past as u32 + t]).collect();
        gpu.write(&s.pos_map, 0, bytemuck::cast_slice(&map));
        let mut rec = gpu.recorder();
        for shard in &self.embed_tokens.shards {
            let dt = self.embed_tokens.dtype;
            embedding::embedding(
                &mut rec,
                &s.ids,
                n as u32,
                &shard.buf,
                dt,
                shard.row_start as u32,
                shard.rows as u32,
                d as u32,
                &s.x,
            )?;
        }
        let pos = GatherRows {
            map: &s.pos_map,
            wt: None,
            src: &self.decoder_positions,
            dst: &s.x,
            entries: n as u32,
            taps: 1,
            dim: d as u32,
            accumulate: true,
        };
        gather::gather_rows(&mut rec, pos)?;
        let (heads, hd) = (c.decoder_attention_heads as u32, (d / c.decoder_attention_heads) as u32);
        for (i, layer) in self.decoder_layers.iter().enumerate() {
            let (k_cache, v_cache) = (&kv.k[i], &kv.v[i]);
            let sa = &layer.self_attn;
            layer.self_attn_layer_norm.forward(&mut rec, &s.x, &s.h, n)?;
            sa.q_proj.forward(&mut rec, &s.h, 0, n, &s.q, OutAt::rows(d))?;
            // Keys and values go straight into the cache after the `past` entries.
            let at_past = OutAt { offset: past * d, stride: d, accumulate: false };
            sa.k_proj.forward(&mut rec, &s.h, 0, n, k_cache, at_past)?;
            sa.v_proj.forward(&mut rec, &s.h, 0, n, v_cache, at_past)?;
            let attend = |q, k, v, keys| Attend {
                q,
                k,
                v,
                partial: &s.partial,
                out: &s.attn,
                tokens: n as u32,
                keys,
                heads,
                kv_heads: heads,
                head_dim: hd,
            };
            attention::attention(&mut rec, attend(&s.q, k_cache, v_cache, Keys::Causal { past: past as u32 }))?;
            sa.out_proj.forward(&mut rec, &s.attn, 0, n, &s.x, OutAt::residual(d))?;
            let ca = &layer.encoder_attn;
            layer.encoder_attn_layer_norm.forward(&mut rec, &s.x, &s.h, n)?;
            ca.q_proj.forward(&mut rec, &s.h, 0, n, &s.q, OutAt::rows(d))?;
            let all = Keys::All(c.max_source_positions as u32);
            attention::attention(&mut rec, attend(&s.q, &cross.k[i], &cross.v[i], all))?;
            ca.out_proj.forward(&mut rec, &s.attn, 0, n, &s.x, OutAt::residual(d))?;
            layer.final_layer_norm.forward(&mut rec, &s.x, &s.h, n)?;
            layer.mlp.forward(&mut rec, &s.h, [&s.mid, &s.act, &s.x], n, d)?;
        }
        self.decoder_norm.forward(&mut rec, &s.x, &s.h, n)?;
        self.embed_tokens.linear(&mut rec, &s.h, (n - 1) * d, 1, &[], &s.logits, OutAt::rows(c.vocab_size))?;
        rec.submit_cached(&mut s.step_cache.borrow_mut())
    }
}
