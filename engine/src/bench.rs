//! Benchmarks on real model shapes with synthetic weights: a [`SyntheticSource`] serves a
//! `config.json` and a `model.safetensors` whose bytes are generated on demand, so the real
//! loader streams multi-gigabyte checkpoints that never exist on disk. [`run`] measures the
//! read bandwidth of this adapter, prefill and decode speed, and how close decode comes to the
//! bandwidth limit; [`run_vision`] times the vision tower per image.

use serde::Serialize;

use crate::error::{EngineError, LoadError};
use crate::formats::gguf;
use crate::formats::hf_config::{self, TextConfig, VisionConfig};
use crate::formats::whisper::WhisperConfig;
use crate::generate::top_k;
use crate::gpu::{now_ms, Gpu};
use crate::kernels::reduce;
use crate::load::{ByteSource, TensorIndex};
use crate::models::layers::{Loader, CHUNK_BYTES};
use crate::models::qwen_text::{text_positions, Step, TextModel};
use crate::models::qwen_vision::{VisionInput, VisionModel};
use crate::models::whisper::{WhisperModel, WINDOW_FRAMES};
use crate::tensor::DType;

/// Published shapes of the supported models (MODELS.md §1 and §2), as Hub-style config.json.
pub fn preset_config(name: &str) -> Result<serde_json::Value, EngineError> {
    let vision = match name {
        "qwen3-vl-2b" | "qwen3-vl-4b" => serde_json::json!({
            "depth": 24, "hidden_size": 1024, "intermediate_size": 4096, "num_heads": 16,
            "out_hidden_size": if name == "qwen3-vl-2b" { 2048 } else { 2560 },
            "patch_size": 16, "temporal_patch_size": 2, "spatial_merge_size": 2,
            "hidden_act": "gelu_pytorch_tanh", "num_position_embeddings": 2304,
            "deepstack_visual_indexes": [5, 11, 17]}),
        "qwen2-vl-2b" => serde_json::json!({
            "depth": 32, "embed_dim": 1280, "mlp_ratio": 4, "num_heads": 16, "hidden_size": 1536,
            "patch_size": 14, "temporal_patch_size": 2, "spatial_merge_size": 2}),
        _ => serde_json::json!({
            "depth": 32, "hidden_size": 1280, "intermediate_size": 3420, "num_heads": 16,
            "out_hidden_size": 2048, "patch_size": 14, "temporal_patch_size": 2,
            "spatial_merge_size": 2, "hidden_act": "silu", "window_size": 112,
            "fullatt_block_indexes": [7, 15, 23, 31]}),
    };
    let (mt, hidden, layers, heads, kv, inter, theta, section, qwen3) = match name {
        "qwen3-vl-2b" => ("qwen3_vl", 2048, 28, 16, 8, 6144, 5e6, [24, 20, 20], true),
        "qwen3-vl-4b" => ("qwen3_vl", 2560, 36, 32, 8, 9728, 5e6, [24, 20, 20], true),
        "qwen2-vl-2b" => ("qwen2_vl", 1536, 28, 12, 2, 8960, 1e6, [16, 24, 24], false),
        "qwen2.5-vl-3b" => ("qwen2_5_vl", 2048, 36, 16, 2, 11008, 1e6, [16, 24, 24], false),
        other => {
            return Err(EngineError::Input(format!(
                "unknown model shape {other:?} (qwen3-vl-2b, qwen3-vl-4b, qwen2-vl-2b, qwen2.5-vl-3b)"
            )))
        }
    };
    let text = serde_json::json!({
        "vocab_size": 151936, "hidden_size": hidden, "intermediate_size": inter,
        "num_hidden_layers": layers, "num_attention_heads": heads, "num_key_value_heads": kv,
        "head_dim": 128, "rms_norm_eps": 1e-6, "max_position_embeddings": 32768,
        "rope_theta": theta,
        "rope_scaling": {"type": "mrope", "mrope_section": section, "mrope_interleaved": qwen3},
    });
    Ok(if qwen3 {
        serde_json::json!({"model_type": mt, "tie_word_embeddings": true, "text_config": text, "vision_config": vision})
    } else {
        let mut flat = text;
        flat["model_type"] = mt.into();
        flat["tie_word_embeddings"] = true.into();
        flat["vision_config"] = vision;
        flat
    })
}

/// A model folder that exists only as a formula: `config.json` and a checkpoint of small
/// pseudo-random values generated for whatever byte range is read. Plain types come as
/// `model.safetensors`; quantized types as `model.gguf` with llama.cpp's tensor names, the 2-D
/// weights in ggml blocks of that type (finite f16 scales, random quants) and the vectors F32,
/// as real quantized files are laid out.
pub struct SyntheticSource {
    config: Vec<u8>,
    /// Header bytes at the start of the file (length prefix included for safetensors).
    head: Vec<u8>,
    file: &'static str,
    /// (start, end, type) of each tensor's bytes in the file, in order.
    segments: Vec<(u64, u64, DType)>,
    size: u64,
}

/// The GGUF type id and block bytes of a quantized type, with the offsets of its f16 scales.
fn ggml_layout(d: DType) -> (u32, u64, &'static [u64]) {
    match d {
        DType::Q8_0 => (8, 34, &[0]),
        DType::Q4_0 => (2, 18, &[0]),
        DType::Q4_K => (12, 144, &[0, 2]),
        DType::Q6_K => (14, 210, &[208]),
        DType::F16 => (1, 2, &[]),
        DType::BF16 => (30, 2, &[]),
        DType::F32 => (0, 4, &[]),
    }
}

impl SyntheticSource {
    pub fn new(config: &serde_json::Value, dtype: DType) -> Result<Self, EngineError> {
        let config = serde_json::to_vec(config).map_err(|e| EngineError::Input(e.to_string()))?;
        let cfg = hf_config::parse(&config)?;
        let prefix = if cfg.family == hf_config::Family::Qwen3Vl { "model.language_model." } else { "model." };
        let tensors: Vec<(String, Vec<usize>)> = TextModel::tensor_names(&cfg.text, prefix)
            .into_iter()
            .map(|n| {
                let s = tensor_shape(&cfg.text, &n);
                (n, s)
            })
            .collect();
        if dtype.is_quantized() {
            Self::gguf(config, dtype, &tensors)
        } else {
            Self::safetensors(config, dtype, &tensors)
        }
    }

    /// The vision tower of `config` alone, as a safetensors file of `dtype` (f32, f16 or bf16;
    /// quantized types give f16: mmproj files are not mapped yet).
    pub fn vision(config: &serde_json::Value, dtype: DType) -> Result<Self, EngineError> {
        let bytes = serde_json::to_vec(config).map_err(|e| EngineError::Input(e.to_string()))?;
        let cfg = hf_config::parse(&bytes)?;
        let v = cfg.vision.ok_or_else(|| EngineError::Input("the shape has no vision tower".into()))?;
        let tensors: Vec<(String, Vec<usize>)> = VisionModel::tensor_names(&v, "visual.", false)
            .into_iter()
            .map(|n| (n.clone(), vision_tensor_shape(&v, &n)))
            .collect();
        let dtype = if dtype.is_quantized() { DType::F16 } else { dtype };
        Self::safetensors(bytes, dtype, &tensors)
    }

    fn safetensors(config: Vec<u8>, dtype: DType, tensors: &[(String, Vec<usize>)]) -> Result<Self, EngineError> {
        let st = match dtype {
            DType::F32 => "F32",
            DType::BF16 => "BF16",
            _ => "F16",
        };
        let mut header = serde_json::Map::new();
        let mut spans = Vec::new();
        let mut offset = 0u64;
        for (name, shape) in tensors {
            let bytes = shape.iter().product::<usize>() as u64 * dtype.size_bytes() as u64;
            header.insert(
                name.clone(),
                serde_json::json!({"dtype": st, "shape": shape, "data_offsets": [offset, offset + bytes]}),
            );
            spans.push((offset, offset + bytes, dtype));
            offset += bytes;
        }
        let mut header = serde_json::to_vec(&header).map_err(|e| EngineError::Input(e.to_string()))?;
        header.resize(header.len().div_ceil(8) * 8, b' ');
        let mut head = (header.len() as u64).to_le_bytes().to_vec();
        head.extend_from_slice(&header);
        let data_start = head.len() as u64;
        let segments = spans.into_iter().map(|(a, b, d)| (data_start + a, data_start + b, d)).collect();
        Ok(SyntheticSource { config, head, file: "model.safetensors", segments, size: data_start + offset })
    }

    fn gguf(config: Vec<u8>, dtype: DType, tensors: &[(String, Vec<usize>)]) -> Result<Self, EngineError> {
        let mut h = b"GGUF".to_vec();
        h.extend(3u32.to_le_bytes());
        h.extend((tensors.len() as u64).to_le_bytes());
        h.extend(0u64.to_le_bytes());
        let mut spans = Vec::new();
        let mut offset = 0u64;
        for (name, shape) in tensors {
            let ty = if shape.len() == 2 && shape[1] % dtype.block_len() == 0 { dtype } else { DType::F32 };
            let (id, block_bytes, _) = ggml_layout(ty);
            let numel = shape.iter().product::<usize>() as u64;
            let bytes = numel / ty.block_len() as u64 * block_bytes;
            let g = gguf::gguf_name(name).ok_or_else(|| EngineError::Input(format!("no GGUF name for {name}")))?;
            h.extend((g.len() as u64).to_le_bytes());
            h.extend(g.as_bytes());
            h.extend((shape.len() as u32).to_le_bytes());
            for d in shape.iter().rev() {
                h.extend((*d as u64).to_le_bytes());
            }
            h.extend(id.to_le_bytes());
            h.extend(offset.to_le_bytes());
            spans.push((offset, offset + bytes, ty));
            offset = (offset + bytes).div_ceil(32) * 32;
        }
        h.resize(h.len().div_ceil(32) * 32, 0);
        let data_start = h.len() as u64;
        let segments = spans.into_iter().map(|(a, b, d)| (data_start + a, data_start + b, d)).collect();
        Ok(SyntheticSource { config, head: h, file: "model.gguf", segments, size: data_start + offset })
    }

    /// A loader over this checkpoint (weights kept in their stored type).
    fn loader<'a>(
        &'a self,
        gpu: &'a Gpu,
        index: &'a TensorIndex,
        report: &'a mut dyn FnMut(&crate::models::layers::LoadProgress),
    ) -> Loader<'a, Self> {
        Loader {
            gpu,
            src: self,
            index,
            bytes_done: 0,
            bytes_total: self.size,
            progress: report,
            quantize: None,
            chunk_bytes: CHUNK_BYTES,
            written: 0,
        }
    }

    /// Bytes of the synthetic checkpoint.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The checkpoint's file name (`model.safetensors` or `model.gguf`).
    pub fn weights_file(&self) -> &'static str {
        self.file
    }

    /// Data bytes from absolute offset `start`: per tensor, plain values are small finite
    /// numbers hashed from their index; quant blocks are hashed bytes with finite f16 scales.
    fn fill(&self, start: u64, out: &mut [u8]) {
        for (i, byte) in out.iter_mut().enumerate() {
            let pos = start + i as u64;
            let seg = self.segments.partition_point(|s| s.1 <= pos);
            let Some(&(a, b, ty)) = self.segments.get(seg).filter(|s| s.0 <= pos && pos < s.1) else {
                *byte = 0; // alignment padding
                continue;
            };
            let rel = pos - a;
            let _ = b;
            let (_, block_bytes, scales) = ggml_layout(ty);
            *byte = if ty.is_quantized() {
                let within = rel % block_bytes;
                match scales.iter().find(|&&o| within == o || within == o + 1) {
                    // f16 0x2000 + mantissa: a scale in [2^-7, 2^-6).
                    Some(&o) => [(splitmix(rel / block_bytes) & 0xff) as u8, 0x20][(within - o) as usize],
                    None => (splitmix(rel) & 0xff) as u8,
                }
            } else {
                let es = ty.size_bytes() as u64;
                let h = splitmix(rel / es);
                let bits: u32 = match ty {
                    // |x| in [2^-7, 2^-6): exponent fixed, random mantissa and sign.
                    DType::BF16 => ((h & 0x807f) | (120 << 7)) as u32,
                    DType::F32 => ((h as u32) & 0x807f_ffff) | (120 << 23),
                    _ => ((h & 0x83ff) | (8 << 10)) as u32,
                };
                bits.to_le_bytes()[(rel % es) as usize]
            };
        }
    }
}

fn splitmix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The checkpoint shape of a text-tower tensor named as [`TextModel::tensor_names`] names it.
fn tensor_shape(c: &TextConfig, name: &str) -> Vec<usize> {
    let (q, kv) = (c.num_attention_heads * c.head_dim, c.num_key_value_heads * c.head_dim);
    let leaf = name.rsplit('.').take(2).collect::<Vec<_>>();
    match (leaf[1], leaf[0]) {
        ("embed_tokens", _) | ("lm_head", _) => vec![c.vocab_size, c.hidden_size],
        ("q_proj", "weight") => vec![q, c.hidden_size],
        ("k_proj" | "v_proj", "weight") => vec![kv, c.hidden_size],
        ("q_proj", "bias") => vec![q],
        ("k_proj" | "v_proj", "bias") => vec![kv],
        ("o_proj", _) => vec![c.hidden_size, q],
        ("q_norm" | "k_norm", _) => vec![c.head_dim],
        ("gate_proj" | "up_proj", _) => vec![c.intermediate_size, c.hidden_size],
        ("down_proj", _) => vec![c.hidden_size, c.intermediate_size],
        _ => vec![c.hidden_size],
    }
}

/// The checkpoint shape of a vision-tower tensor named as [`VisionModel::tensor_names`] names it.
fn vision_tensor_shape(v: &VisionConfig, name: &str) -> Vec<usize> {
    let (c, i, out) = (v.hidden_size, v.intermediate_size, v.out_hidden_size);
    let wide = c * v.spatial_merge_size * v.spatial_merge_size;
    let merger = name.contains("merger");
    let deep = name.contains("deepstack");
    let leaf: Vec<&str> = name.rsplit('.').take(2).collect();
    let weight = leaf[0] == "weight";
    let (rows, cols) = match leaf[1] {
        "proj" if name.contains("patch_embed") => (c, v.patch_dim()),
        "pos_embed" => (v.num_position_embeddings, c),
        "qkv" => (3 * c, c),
        "proj" => (c, c),
        "fc1" | "linear_fc1" | "gate_proj" | "up_proj" | "0" if merger => (wide, wide),
        "fc2" | "linear_fc2" | "2" if merger => (out, wide),
        "fc1" | "linear_fc1" | "gate_proj" | "up_proj" => (i, c),
        "fc2" | "linear_fc2" | "down_proj" => (c, i),
        _ if deep => (wide, 0),
        _ => (c, 0),
    };
    if weight && cols > 0 {
        vec![rows, cols]
    } else {
        vec![rows]
    }
}

impl ByteSource for SyntheticSource {
    fn describe(&self, file: &str) -> String {
        format!("synthetic:{file}")
    }

    async fn read(&self, file: &str) -> Result<Vec<u8>, LoadError> {
        match file {
            "config.json" => Ok(self.config.clone()),
            _ => Err(LoadError::NotFound { file: self.describe(file) }),
        }
    }

    async fn read_range(&self, file: &str, start: u64, len: u64) -> Result<Vec<u8>, LoadError> {
        if file != self.file || start + len > self.size {
            return Err(LoadError::NotFound { file: self.describe(file) });
        }
        let mut out = vec![0u8; len as usize];
        let head = self.head.len() as u64;
        let n = head.saturating_sub(start).min(len) as usize;
        if n > 0 {
            out[..n].copy_from_slice(&self.head[start as usize..start as usize + n]);
        }
        if n < out.len() {
            self.fill(start + n as u64, &mut out[n..]);
        }
        Ok(out)
    }

    async fn size(&self, file: &str) -> Result<Option<u64>, LoadError> {
        Ok((file == self.file).then_some(self.size))
    }
}

/// What to measure.
#[derive(Clone, Debug)]
pub struct BenchOptions {
    pub model: String,
    /// Weight type (quantized types come as a GGUF of that type).
    pub dtype: DType,
    pub prefill_tokens: Vec<usize>,
    pub decode_tokens: usize,
    pub context: usize,
    pub prefill_chunk: usize,
}

/// The figures of one run.
#[derive(Clone, Debug, Serialize)]
pub struct BenchReport {
    pub model: String,
    pub quant: String,
    pub adapter: String,
    pub load_s: f64,
    pub checkpoint_gb: f64,
    /// (tokens, tokens per second)
    pub prefill: Vec<(usize, f64)>,
    pub prefill_tokens_per_s: f64,
    pub decode_tokens_per_s: f64,
    pub decode_context: usize,
    pub read_bandwidth_gb_s: f64,
    /// Weights and KV cache read per decoded token.
    pub bytes_per_token: u64,
    /// bytes_per_token × decode tokens/s ÷ read bandwidth.
    pub roofline_ratio: f64,
    /// Each decode kernel alone at this shape: (what, µs per call, GB/s read).
    pub kernels: Vec<(String, f64, f64)>,
}

/// Times `dispatch` recorded `reps` times in one pass, after one warm-up; µs per call.
async fn time_kernel(
    gpu: &Gpu,
    probe: &wgpu::Buffer,
    reps: usize,
    dispatch: &dyn Fn(&mut crate::gpu::Recorder<'_>) -> Result<(), EngineError>,
) -> Result<f64, EngineError> {
    let mut rec = gpu.recorder();
    dispatch(&mut rec)?;
    rec.submit()?;
    gpu.read_f32(probe, 0, 1).await?;
    let t = now_ms();
    let mut rec = gpu.recorder();
    for _ in 0..reps {
        dispatch(&mut rec)?;
    }
    rec.submit()?;
    gpu.read_f32(probe, 0, 1).await?;
    Ok((now_ms() - t) * 1000.0 / reps as f64)
}

/// The decode step's kernels one by one at the model's shapes (one token, `context` keys).
pub async fn profile_decode_kernels(
    gpu: &Gpu,
    c: &TextConfig,
    dtype: DType,
    context: usize,
) -> Result<Vec<(String, f64, f64)>, EngineError> {
    use crate::kernels::{attention, elementwise, matmul, norm, rope};
    let row_bytes = |cols: usize| dtype.row_bytes(cols) as u64;
    let (h, inter, hd) = (c.hidden_size, c.intermediate_size, c.head_dim);
    let (q, kv) = (c.num_attention_heads * hd, c.num_key_value_heads * hd);
    let x = gpu.buffer("x", (inter.max(q) * 4) as u64)?;
    let y = gpu.buffer("y", (inter.max(q).max(8192) * 4) as u64)?;
    let mut out = Vec::new();
    for (what, n, k) in [
        ("matvec q_proj", q, h),
        ("matvec k_proj", kv, h),
        ("matvec gate+up", 2 * inter, h),
        ("matvec down", h, inter),
        ("matvec o_proj", h, q),
        ("matvec head shard 8192", 8192, h),
    ] {
        let w = gpu.buffer("w", n as u64 * row_bytes(k))?;
        let us = time_kernel(gpu, &y, 50, &|rec| {
            matmul::linear(
                rec,
                matmul::Linear {
                    x: &x,
                    x_offset: 0,
                    m: 1,
                    k: k as u32,
                    w: &w,
                    w_dtype: dtype,
                    n: n as u32,
                    bias: None,
                    y: &y,
                    y_offset: 0,
                    y_stride: n as u32,
                    accumulate: false,
                },
            )
        })
        .await?;
        out.push((format!("{what} [{n}x{k}]"), us, (n as u64 * row_bytes(k)) as f64 / us / 1e3));
    }
    let kc = gpu.buffer("k", (context * kv * 4) as u64)?;
    let vc = gpu.buffer("v", (context * kv * 4) as u64)?;
    let (heads, kvh) = (c.num_attention_heads as u32, c.num_key_value_heads as u32);
    let part = gpu.buffer("partial", attention::partial_len(1, c.num_attention_heads, hd) as u64 * 4)?;
    let us = time_kernel(gpu, &y, 50, &|rec| {
        let keys = attention::Keys::Causal { past: context as u32 - 1 };
        let (head_dim, tokens) = (hd as u32, 1);
        let a = attention::Attend {
            q: &x,
            k: &kc,
            v: &vc,
            partial: &part,
            out: &y,
            tokens,
            keys,
            heads,
            kv_heads: kvh,
            head_dim,
        };
        attention::attention(rec, a)
    })
    .await?;
    out.push((format!("attention decode @{context}"), us, (2 * context * kv * 4) as f64 / us / 1e3));
    let wn = gpu.buffer("norm", (h * 4) as u64)?;
    let us = time_kernel(gpu, &y, 50, &|rec| norm::rms_norm(rec, &x, &wn, &y, 1, h as u32, 1e-6)).await?;
    out.push(("rms_norm".into(), us, (h * 8) as f64 / us / 1e3));
    let cs = gpu.buffer("cos_sin", (hd * 4) as u64)?;
    let us = time_kernel(gpu, &y, 50, &|rec| {
        rope::rope(rec, &x, rope::Src::packed(heads, hd as u32), &cs, &y, 0, 1, heads, hd as u32)
    })
    .await?;
    out.push(("rope q".into(), us, (q * 8) as f64 / us / 1e3));
    let gu = gpu.buffer("gate_up", (2 * inter * 4) as u64)?;
    let us = time_kernel(gpu, &y, 50, &|rec| elementwise::silu_mul(rec, &gu, &y, 1, inter as u32)).await?;
    out.push(("silu_mul".into(), us, (inter * 12) as f64 / us / 1e3));
    Ok(out)
}

/// Read bandwidth of the adapter in GB/s: the reduce kernel over the largest buffer one
/// binding takes (at most 1 GiB), several passes, timed to completion.
pub async fn read_bandwidth(gpu: &Gpu) -> Result<f64, EngineError> {
    let bytes =
        (gpu.adapter.max_storage_binding_bytes.min(1 << 30) / 16 * 16).min(gpu.adapter.max_buffer_bytes / 16 * 16);
    let buf = gpu.buffer("bandwidth", bytes)?;
    let groups = 4096u32;
    let partial = gpu.buffer("partial", groups as u64 * 4)?;
    let n_vec4 = (bytes / 16) as u32;
    let pass = |passes: usize| -> Result<(), EngineError> {
        let mut rec = gpu.recorder();
        for _ in 0..passes {
            reduce::read_sum(&mut rec, &buf, n_vec4, &partial, groups)?;
        }
        rec.submit()
    };
    pass(1)?;
    gpu.read_f32(&partial, 0, 1).await?;
    let passes = 10;
    let t0 = now_ms();
    pass(passes)?;
    gpu.read_f32(&partial, 0, 1).await?;
    let s = (now_ms() - t0) / 1000.0;
    Ok(bytes as f64 * passes as f64 / s / 1e9)
}

pub async fn run(gpu: &Gpu, o: &BenchOptions, progress: &mut dyn FnMut(&str)) -> Result<BenchReport, EngineError> {
    let config = preset_config(&o.model)?;
    let src = SyntheticSource::new(&config, o.dtype)?;
    let cfg = hf_config::parse(&serde_json::to_vec(&config).map_err(|e| EngineError::Input(e.to_string()))?)?;
    progress(&format!(
        "loading {:.2} GB of synthetic {:?} weights ({})",
        src.size() as f64 / 1e9,
        o.dtype,
        src.weights_file()
    ));
    let longest = o.prefill_tokens.iter().copied().max().unwrap_or(0);
    let capacity = (o.context + o.decode_tokens + 2).max(longest + 1);
    TextModel::check_limits(&cfg.text, gpu, capacity, o.prefill_chunk)?;
    let t0 = now_ms();
    let index = TensorIndex::open(&src, Some(src.weights_file()), None).await?;
    // GGUF names map to `model.`; Qwen3-VL safetensors nest the text tower one level deeper.
    let prefix =
        if index.contains("model.language_model.embed_tokens.weight") { "model.language_model." } else { "model." };
    let mut report = |_: &crate::models::layers::LoadProgress| {};
    let mut loader = src.loader(gpu, &index, &mut report);
    let model = TextModel::load(&mut loader, &cfg.text, prefix).await?;
    gpu.check()?;
    let load_s = (now_ms() - t0) / 1000.0;

    progress("measuring read bandwidth");
    let bandwidth = read_bandwidth(gpu).await?;

    let kv = model.new_cache(gpu, capacity)?;
    let scratch = model.new_scratch(gpu, o.prefill_chunk)?;
    let vocab = cfg.text.vocab_size;
    let step = |ids: &[u32], past: usize, logits: bool| -> Result<(), EngineError> {
        let positions = text_positions(past, ids.len());
        model.forward(gpu, &Step { ids, positions: &positions, past, logits, vision: None }, &kv, &scratch)
    };

    let mut prefill = Vec::new();
    for &n in &o.prefill_tokens {
        progress(&format!("prefill {n} tokens"));
        let ids: Vec<u32> = (0..n as u32).map(|i| (i * 7919) % vocab as u32).collect();
        // Warm up pipelines with one chunk, then time the whole prompt.
        step(&ids[..o.prefill_chunk.min(n)], 0, true)?;
        gpu.read_f32(&scratch.logits, 0, 1).await?;
        let t = now_ms();
        let mut pos = 0;
        while pos < n {
            let end = (pos + o.prefill_chunk).min(n);
            step(&ids[pos..end], pos, end == n)?;
            pos = end;
        }
        gpu.read_f32(&scratch.logits, 0, vocab).await?;
        prefill.push((n, n as f64 / ((now_ms() - t) / 1000.0)));
    }

    progress(&format!("decode {} tokens at context {}", o.decode_tokens, o.context));
    // The cache contents do not change the work: decode at `context` past positions.
    for w in 0..2 {
        step(&[1], o.context + w, true)?;
        gpu.read_f32(&scratch.logits, 0, vocab).await?;
    }
    let t = now_ms();
    for i in 0..o.decode_tokens {
        step(&[(i % vocab) as u32], o.context + i, true)?;
        // As generation does: read the logits back every token.
        gpu.read_f32(&scratch.logits, 0, vocab).await?;
    }
    let decode_tokens_per_s = o.decode_tokens as f64 / ((now_ms() - t) / 1000.0);

    progress("profiling decode kernels");
    let kernels = profile_decode_kernels(gpu, &cfg.text, o.dtype, o.context.max(1)).await?;
    let kv_dim = (cfg.text.num_key_value_heads * cfg.text.head_dim) as u64;
    let kv_bytes = 2 * cfg.text.num_hidden_layers as u64 * (o.context as u64 + o.decode_tokens as u64 / 2) * kv_dim * 4;
    let bytes_per_token = model.decode_weight_bytes() + kv_bytes;
    gpu.check()?;
    Ok(BenchReport {
        model: o.model.clone(),
        quant: format!("{:?}", o.dtype).to_lowercase(),
        adapter: format!("{} ({})", gpu.adapter.name, gpu.adapter.backend),
        load_s,
        checkpoint_gb: src.size() as f64 / 1e9,
        prefill_tokens_per_s: prefill.last().map_or(0.0, |p| p.1),
        prefill,
        decode_tokens_per_s,
        decode_context: o.context,
        read_bandwidth_gb_s: bandwidth,
        bytes_per_token,
        roofline_ratio: bytes_per_token as f64 * decode_tokens_per_s / (bandwidth * 1e9),
        kernels,
    })
}

/// Vision-tower time for one image of each size.
#[derive(Clone, Debug, Serialize)]
pub struct VisionBench {
    pub width: u32,
    pub height: u32,
    /// Patch grid `[t, h, w]` after `smart_resize`, and the merged tokens it gives.
    pub grid_thw: [usize; 3],
    pub tokens: usize,
    pub ms_per_image: f64,
}

/// Loads the vision tower of shape `model` with synthetic `dtype` weights and times a forward
/// (median of `reps` after a warm-up) for an image of each `(width, height)`.
pub async fn run_vision(
    gpu: &Gpu,
    model: &str,
    dtype: DType,
    sizes: &[(u32, u32)],
    reps: usize,
    progress: &mut dyn FnMut(&str),
) -> Result<Vec<VisionBench>, EngineError> {
    let config = preset_config(model)?;
    let src = SyntheticSource::vision(&config, dtype)?;
    let cfg = hf_config::parse(&src.config)?;
    let v = cfg.vision.clone().ok_or_else(|| EngineError::Input("no vision tower".into()))?;
    progress(&format!("loading {:.2} GB of synthetic vision weights", src.size() as f64 / 1e9));
    let index = TensorIndex::open(&src, Some(src.weights_file()), None).await?;
    let mut report = |_: &crate::models::layers::LoadProgress| {};
    let mut loader = src.loader(gpu, &index, &mut report);
    let tower = VisionModel::load(&mut loader, &v, "visual.").await?;
    let mut pre = if cfg.family == hf_config::Family::Qwen3Vl {
        qwglm_vision::PreprocessConfig::qwen3_vl()
    } else {
        qwglm_vision::PreprocessConfig::qwen2_vl()
    };
    pre.min_pixels = 1;
    let mut out = Vec::new();
    for &(w, h) in sizes {
        progress(&format!("vision tower on {w}x{h}"));
        let img =
            qwglm_vision::RgbImage::from_fn(w, h, |x, y| qwglm_vision::Rgb([(x % 256) as u8, (y % 256) as u8, 128]));
        let p = qwglm_vision::preprocess(&img, &pre)?;
        let grids = [p.grid_thw];
        let input = VisionInput { patches: &p.data, grids: &grids };
        let mut times = Vec::new();
        for r in 0..=reps {
            let t = now_ms();
            let o = tower.forward(gpu, &input)?;
            gpu.read_f32(&o.embeds, 0, 1).await?;
            if r > 0 {
                times.push(now_ms() - t);
            }
        }
        times.sort_by(f64::total_cmp);
        let [t, gh, gw] = p.grid_thw;
        out.push(VisionBench {
            width: w,
            height: h,
            grid_thw: p.grid_thw,
            tokens: t * gh * gw / (v.spatial_merge_size * v.spatial_merge_size),
            ms_per_image: times[times.len() / 2],
        });
    }
    gpu.check()?;
    Ok(out)
}

/// Published Whisper shapes (the `config.json` of the Hub's `openai/whisper-*` repositories).
pub fn whisper_config(name: &str) -> Result<serde_json::Value, EngineError> {
    let (d, enc, dec, heads, mels, vocab) = match name {
        "whisper-tiny" => (384, 4, 4, 6, 80, 51865),
        "whisper-base" => (512, 6, 6, 8, 80, 51865),
        "whisper-small" => (768, 12, 12, 12, 80, 51865),
        "whisper-large-v3-turbo" => (1280, 32, 4, 20, 128, 51866),
        other => {
            return Err(EngineError::Input(format!(
                "unknown speech shape {other:?} (whisper-tiny, whisper-base, whisper-small, whisper-large-v3-turbo)"
            )))
        }
    };
    Ok(serde_json::json!({
        "model_type": "whisper", "d_model": d, "encoder_layers": enc, "decoder_layers": dec,
        "encoder_attention_heads": heads, "decoder_attention_heads": heads,
        "encoder_ffn_dim": 4 * d, "decoder_ffn_dim": 4 * d, "num_mel_bins": mels,
        "max_source_positions": 1500, "max_target_positions": 448, "vocab_size": vocab,
    }))
}

/// The checkpoint shape of a Whisper tensor named as [`WhisperModel::tensor_names`] names it.
fn whisper_tensor_shape(c: &WhisperConfig, name: &str) -> Vec<usize> {
    let d = c.d_model;
    let ffn = if name.contains(".encoder.") { c.encoder_ffn_dim } else { c.decoder_ffn_dim };
    match name {
        n if n.ends_with("conv1.weight") => vec![d, c.num_mel_bins, 3],
        n if n.ends_with("conv2.weight") => vec![d, d, 3],
        n if n.ends_with("encoder.embed_positions.weight") => vec![c.max_source_positions, d],
        n if n.ends_with("decoder.embed_positions.weight") => vec![c.max_target_positions, d],
        n if n.ends_with("embed_tokens.weight") => vec![c.vocab_size, d],
        n if n.ends_with("fc1.weight") => vec![ffn, d],
        n if n.ends_with("fc1.bias") => vec![ffn],
        n if n.ends_with("fc2.weight") => vec![d, ffn],
        n if n.ends_with("proj.weight") => vec![d, d],
        _ => vec![d],
    }
}

/// Tokens a 30 s window of speech decodes to, for the real-time factor: about 150 words a
/// minute at 1.3 tokens a word.
pub const TOKENS_PER_WINDOW: usize = 100;

/// Speech-recognizer figures on one shape.
#[derive(Clone, Debug, Serialize)]
pub struct SpeechBench {
    pub model: String,
    pub quant: String,
    pub adapter: String,
    pub load_s: f64,
    pub checkpoint_gb: f64,
    /// Encoder (and cross-attention keys and values) for one 30 s window, median.
    pub encode_ms: f64,
    /// Decoder steps with the logits read back, as the recognizer decodes.
    pub decode_tokens_per_s: f64,
    /// (encode + [`TOKENS_PER_WINDOW`] decoder steps) / 30 s.
    pub rtf: f64,
}

/// Loads Whisper shape `model` with synthetic weights (f16 or f32; quantized types are f16
/// quantized on load) and times the encoder on a 30 s window and `decode_tokens` decoder steps.
pub async fn run_speech(
    gpu: &std::rc::Rc<Gpu>,
    model: &str,
    dtype: DType,
    decode_tokens: usize,
    reps: usize,
    progress: &mut dyn FnMut(&str),
) -> Result<SpeechBench, EngineError> {
    let config = whisper_config(model)?;
    let bytes = serde_json::to_vec(&config).map_err(|e| EngineError::Input(e.to_string()))?;
    let cfg = WhisperConfig::parse(&bytes)?;
    let tensors: Vec<(String, Vec<usize>)> =
        WhisperModel::tensor_names(&cfg).into_iter().map(|n| (n.clone(), whisper_tensor_shape(&cfg, &n))).collect();
    let stored = if dtype == DType::F32 { DType::F32 } else { DType::F16 };
    let src = SyntheticSource::safetensors(bytes, stored, &tensors)?;
    progress(&format!("loading {:.2} GB of synthetic Whisper weights", src.size() as f64 / 1e9));
    let t0 = now_ms();
    let index = TensorIndex::open(&src, Some(src.weights_file()), None).await?;
    let mut report = |_: &crate::models::layers::LoadProgress| {};
    let mut loader = src.loader(gpu, &index, &mut report);
    loader.quantize = dtype.is_quantized().then_some(dtype);
    let whisper = WhisperModel::load(&mut loader, &cfg).await?;
    gpu.flush_writes()?;
    let load_s = (now_ms() - t0) / 1000.0;
    let mel: Vec<f32> = (0..cfg.num_mel_bins * WINDOW_FRAMES).map(|i| ((i % 97) as f32 / 97.0) - 0.5).collect();
    progress("encoder on a 30 s window");
    let mut times = Vec::new();
    let mut cross = None;
    for r in 0..=reps {
        let t = now_ms();
        let (enc, c) = whisper.encode(gpu, &mel)?;
        gpu.read_f32(&enc, 0, 1).await?;
        if r > 0 {
            times.push(now_ms() - t);
        }
        cross = Some(c);
    }
    times.sort_by(f64::total_cmp);
    let encode_ms = times[times.len() / 2];
    let cross = cross.ok_or_else(|| EngineError::Input("no encoder pass".into()))?;
    progress(&format!("{decode_tokens} decoder steps"));
    let kv = whisper.new_cache(gpu)?;
    let scratch = whisper.new_scratch(gpu)?;
    let steps = decode_tokens.clamp(1, cfg.max_target_positions - 4);
    // The forced prompt first, then one step per token with its logits read back.
    whisper.decode(gpu, &[50258, 50259, 50360, 50364], 0, &kv, &cross, &scratch)?;
    let mut id = top_k(&gpu.read_f32(&scratch.logits, 0, cfg.vocab_size).await?, 1)[0].0;
    let t = now_ms();
    for step in 0..steps {
        whisper.decode(gpu, &[id], 4 + step, &kv, &cross, &scratch)?;
        id = top_k(&gpu.read_f32(&scratch.logits, 0, cfg.vocab_size).await?, 1)[0].0;
    }
    let decode_tokens_per_s = steps as f64 / ((now_ms() - t) / 1000.0);
    gpu.check()?;
    let window_ms = encode_ms + TOKENS_PER_WINDOW as f64 * 1000.0 / decode_tokens_per_s;
    Ok(SpeechBench {
        model: model.to_string(),
        quant: format!("{dtype:?}").to_lowercase(),
        adapter: format!("{} ({})", gpu.adapter.name, gpu.adapter.backend),
        load_s,
        checkpoint_gb: src.size() as f64 / 1e9,
        encode_ms,
        decode_tokens_per_s,
        rtf: window_ms / 30_000.0,
    })
}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    use super::*;

    #[test]
    fn synthetic_checkpoint_is_a_valid_safetensors_file() {
        let src = SyntheticSource::new(&preset_config("qwen3-vl-2b").unwrap(), DType::BF16).unwrap();
        let index = pollster::block_on(TensorIndex::open(&src, None, None)).unwrap();
        let emb = &index.entries["model.language_model.embed_tokens.weight"];
        assert_eq!(emb.shape, vec![151936, 2048]);
        // 1.72 B text parameters in bf16 (MODELS.md §3: 3.44 GB).
        assert!((src.size() as f64 / 1e9 - 3.44).abs() < 0.05, "{}", src.size());
        let t = pollster::block_on(index.read(&src, "model.language_model.norm.weight")).unwrap();
        assert!(t.to_f32().iter().all(|v| v.is_finite() && v.abs() < 0.02 && v.abs() >= 0.0078));
    }

    /// The synthetic vision towers have the published sizes (MODELS.md §3: 1.33 and 1.34 GB in
    /// bf16) and every tensor the loader asks for.
    #[test]
    fn synthetic_whisper_checkpoints_have_the_published_sizes() {
        // The f16 halves of openai/whisper-{tiny,base} (f32 files of 151.06 and 290.40 MB) and
        // whisper-large-v3-turbo's f16 1617.8 MB.
        for (shape, mb) in [("whisper-tiny", 75.53), ("whisper-base", 145.20), ("whisper-large-v3-turbo", 1617.82)] {
            let bytes = serde_json::to_vec(&whisper_config(shape).unwrap()).unwrap();
            let cfg = WhisperConfig::parse(&bytes).unwrap();
            let tensors: Vec<(String, Vec<usize>)> = WhisperModel::tensor_names(&cfg)
                .into_iter()
                .map(|n| (n.clone(), whisper_tensor_shape(&cfg, &n)))
                .collect();
            let src = SyntheticSource::safetensors(bytes, DType::F16, &tensors).unwrap();
            let got = src.size() as f64 / 1e6;
            assert!((got / mb - 1.0).abs() < 0.002, "{shape}: {got:.2} MB");
        }
        assert!(whisper_config("whisper-huge").is_err());
    }

    #[test]
    fn synthetic_vision_towers_have_the_published_sizes() {
        for (shape, gb) in [("qwen2-vl-2b", 1.33), ("qwen2.5-vl-3b", 1.34)] {
            let src = SyntheticSource::vision(&preset_config(shape).unwrap(), DType::BF16).unwrap();
            assert!((src.size() as f64 / 1e9 - gb).abs() < 0.02, "{shape}: {}", src.size());
        }
        let config = preset_config("qwen3-vl-2b").unwrap();
        let src = SyntheticSource::vision(&config, DType::F16).unwrap();
        let index = pollster::block_on(TensorIndex::open(&src, None, None)).unwrap();
        let v = hf_config::parse(&src.config).unwrap().vision.unwrap();
        for name in VisionModel::tensor_names(&v, "visual.", false) {
            assert!(index.contains(&name), "{name}");
        }
        assert_eq!(index.entries["visual.deepstack_merger_list.2.norm.weight"].shape, vec![4096]);
        assert_eq!(index.entries["visual.merger.linear_fc2.weight"].shape, vec![2048, 4096]);
    }

    /// Quantized synthetic checkpoints are GGUF files the real parser reads back, every name
    /// mapping to the tensor the model asks for, with finite values.
    #[test]
    fn synthetic_k_quant_gguf_round_trips() {
        for (dtype, shape) in
            [(DType::Q4_K, "qwen3-vl-2b"), (DType::Q6_K, "qwen2-vl-2b"), (DType::Q4_0, "qwen2.5-vl-3b")]
        {
            let config = preset_config(shape).unwrap();
            let src = SyntheticSource::new(&config, dtype).unwrap();
            let index = pollster::block_on(TensorIndex::open(&src, Some(src.weights_file()), None)).unwrap();
            let cfg = hf_config::parse(&serde_json::to_vec(&config).unwrap()).unwrap();
            for name in TextModel::tensor_names(&cfg.text, "model.") {
                assert!(index.contains(&name), "{dtype:?} {shape}: {name} missing");
            }
            let t = pollster::block_on(index.read(&src, "model.layers.3.mlp.down_proj.weight")).unwrap();
            assert_eq!(t.dtype, dtype);
            let v = t.to_f32();
            assert!(v.iter().all(|x| x.is_finite()) && v.iter().any(|x| *x != 0.0));
        }
    }

    #[test]
    fn bench_runs_on_a_small_shape() {
        pollster::block_on(async {
            let gpu = Gpu::new().await.unwrap();
            let bw = read_bandwidth(&gpu).await.unwrap();
            assert!(bw > 0.0);
        });
    }
}
