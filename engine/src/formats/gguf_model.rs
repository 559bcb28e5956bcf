//! A model described by GGUF metadata instead of Hugging Face files, so that a repository
//! holding only llama.cpp files loads: the text tower's config, tokenizer, chat template and
//! stop ids from the text GGUF (`general.architecture` `qwen2vl` or `qwen3vl`), the vision
//! tower's config and preprocessing from its `mmproj` file (`clip.vision.*`), and the
//! `mmproj` tensor names mapped to the Hugging Face ones (the text names are in `gguf.rs`).
//! The key names are those llama.cpp's `convert_hf_to_gguf.py` writes.

use std::collections::{BTreeMap, HashMap};

use qwglm_vision::PreprocessConfig;

use crate::error::LoadError;
use crate::formats::gguf::Value;
use crate::formats::hf_config::{Family, ModelConfig, TextConfig, VisionConfig};
use crate::formats::safetensors::TensorEntry;
use crate::load::GenerationConfig;

/// Read access to one file's metadata, with errors that name the file and key.
pub struct Meta<'a> {
    pub file: &'a str,
    pub kv: &'a BTreeMap<String, Value>,
}

impl<'a> Meta<'a> {
    fn err(&self, message: String) -> LoadError {
        LoadError::Gguf { file: self.file.to_string(), message }
    }

    pub fn str(&self, key: &str) -> Option<&'a str> {
        match self.kv.get(key) {
            Some(Value::String(s)) => Some(s),
            _ => None,
        }
    }

    pub fn uint(&self, key: &str) -> Option<u64> {
        match self.kv.get(key)? {
            Value::UInt(u) => Some(*u),
            Value::Int(i) => u64::try_from(*i).ok(),
            _ => None,
        }
    }

    pub fn float(&self, key: &str) -> Option<f64> {
        match self.kv.get(key)? {
            Value::Float(f) => Some(*f),
            Value::UInt(u) => Some(*u as f64),
            Value::Int(i) => Some(*i as f64),
            _ => None,
        }
    }

    fn array(&self, key: &str) -> Option<&'a [Value]> {
        match self.kv.get(key) {
            Some(Value::Array(a)) => Some(a),
            _ => None,
        }
    }

    fn need_uint(&self, key: &str) -> Result<usize, LoadError> {
        self.uint(key).map(|v| v as usize).ok_or_else(|| self.err(format!("metadata {key} is missing")))
    }

    fn strings(&self, key: &str) -> Result<Vec<&'a str>, LoadError> {
        let a = self.array(key).ok_or_else(|| self.err(format!("metadata {key} is missing")))?;
        a.iter()
            .map(|v| match v {
                Value::String(s) => Ok(s.as_str()),
                other => Err(self.err(format!("{key} holds {other:?}, not strings"))),
            })
            .collect()
    }

    fn uints(&self, key: &str) -> Option<Vec<u64>> {
        self.array(key)?
            .iter()
            .map(|v| match v {
                Value::UInt(u) => Some(*u),
                Value::Int(i) => u64::try_from(*i).ok(),
                Value::Bool(b) => Some(*b as u64),
                _ => None,
            })
            .collect()
    }

    fn floats3(&self, key: &str) -> Option<[f32; 3]> {
        let a = self.array(key)?;
        let f = |i: usize| match a.get(i)? {
            Value::Float(f) => Some(*f as f32),
            _ => None,
        };
        Some([f(0)?, f(1)?, f(2)?])
    }
}

/// The family of a text GGUF's architecture (`qwen2vl` covers Qwen2-VL and Qwen2.5-VL, whose
/// text towers are the same; the `mmproj` file tells them apart).
fn text_family(meta: &Meta) -> Result<Family, LoadError> {
    match meta.str("general.architecture") {
        Some("qwen2vl") => Ok(Family::Qwen2Vl),
        Some("qwen3vl") => Ok(Family::Qwen3Vl),
        Some(other) => Err(LoadError::Architecture(other.to_string())),
        None => Err(meta.err("metadata general.architecture is missing".into())),
    }
}

/// The family an `mmproj` file's projector belongs to.
pub fn mmproj_family(meta: &Meta) -> Result<Family, LoadError> {
    let t = meta.str("clip.vision.projector_type").or_else(|| meta.str("clip.projector_type"));
    match t {
        Some("qwen2vl_merger") => Ok(Family::Qwen2Vl),
        Some("qwen2.5vl_merger") => Ok(Family::Qwen25Vl),
        Some("qwen3vl_merger") => Ok(Family::Qwen3Vl),
        Some(other) => Err(meta.err(format!("projector type {other:?} is not a Qwen-VL merger"))),
        None => Err(meta.err("metadata clip.vision.projector_type is missing (not an mmproj file?)".into())),
    }
}

/// The id of a token by its text, from the GGUF vocabulary.
fn token_id(tokens: &[&str], text: &str) -> Option<u32> {
    tokens.iter().position(|t| *t == text).map(|i| i as u32)
}

/// The whole model config from a text GGUF (`text`, its tensors under Hugging Face names) and
/// the vision config of its `mmproj` file, if any.
pub fn model_config(
    text: &Meta,
    tensors: &HashMap<String, TensorEntry>,
    vision: Option<(Family, VisionConfig)>,
) -> Result<ModelConfig, LoadError> {
    let arch_family = text_family(text)?;
    let arch = text.str("general.architecture").unwrap_or_default();
    let key = |k: &str| format!("{arch}.{k}");
    let embed =
        tensors.get("model.embed_tokens.weight").ok_or_else(|| LoadError::MissingTensor("token_embd.weight".into()))?;
    let [vocab_size, hidden_size] = embed.shape[..] else {
        return Err(text.err(format!("token_embd.weight has shape {:?}", embed.shape)));
    };
    let heads = text.need_uint(&key("attention.head_count"))?;
    let kv_heads = text.uint(&key("attention.head_count_kv")).map_or(heads, |v| v as usize);
    if heads == 0 || kv_heads == 0 || !heads.is_multiple_of(kv_heads) {
        return Err(text.err(format!("inconsistent head counts {heads} / {kv_heads}")));
    }
    let head_dim = text.uint(&key("attention.key_length")).map_or(hidden_size / heads, |v| v as usize);
    let sections = text.uints(&key("rope.dimension_sections")).unwrap_or_default();
    let mrope_section: [u32; 3] = match sections.get(..3) {
        Some(s) => [s[0] as u32, s[1] as u32, s[2] as u32],
        None => return Err(text.err(format!("{} needs three entries", key("rope.dimension_sections")))),
    };
    if mrope_section.iter().sum::<u32>() as usize * 2 != head_dim {
        return Err(text.err(format!("rope sections {mrope_section:?} do not cover head_dim {head_dim}")));
    }
    let qwen3 = arch_family == Family::Qwen3Vl;
    let text_cfg = TextConfig {
        vocab_size,
        hidden_size,
        intermediate_size: text.need_uint(&key("feed_forward_length"))?,
        num_hidden_layers: text.need_uint(&key("block_count"))?,
        num_attention_heads: heads,
        num_key_value_heads: kv_heads,
        head_dim,
        rms_norm_eps: text.float(&key("attention.layer_norm_rms_epsilon")).unwrap_or(1e-6) as f32,
        rope_theta: text.float(&key("rope.freq_base")).unwrap_or(if qwen3 { 5e6 } else { 1e6 }),
        mrope_section,
        mrope_interleaved: qwen3,
        attention_bias: tensors.contains_key("model.layers.0.self_attn.q_proj.bias"),
        qk_norm: qwen3,
        tie_word_embeddings: !tensors.contains_key("lm_head.weight"),
        max_position_embeddings: text.uint(&key("context_length")).map_or(32768, |v| v as usize),
    };
    let (family, vision) = match vision {
        Some((f, v)) => {
            let same = matches!((arch_family, f), (Family::Qwen3Vl, Family::Qwen3Vl))
                || matches!((arch_family, f), (Family::Qwen2Vl, Family::Qwen2Vl | Family::Qwen25Vl));
            if !same || v.out_hidden_size != hidden_size {
                return Err(text.err(format!(
                    "the mmproj file ({f:?}, width {}) does not belong to this {arch} model (width {hidden_size})",
                    v.out_hidden_size
                )));
            }
            (f, Some(v))
        }
        None => (arch_family, None),
    };
    let tokens = text.strings("tokenizer.ggml.tokens")?;
    let id = |t: &str, default: u32| token_id(&tokens, t).unwrap_or(default);
    Ok(ModelConfig {
        family,
        text: text_cfg,
        vision,
        image_token_id: id("<|image_pad|>", 151655),
        video_token_id: id("<|video_pad|>", 151656),
        vision_start_token_id: id("<|vision_start|>", 151652),
        vision_end_token_id: id("<|vision_end|>", 151653),
    })
}

/// llama.cpp's token types (`gguf.TokenType`).
const CONTROL: u64 = 3;
const USER_DEFINED: u64 = 4;

/// A `tokenizer.json` for the GGUF's byte-level BPE vocabulary (`tokenizer.ggml.model`
/// `gpt2` with the `qwen2` pre-tokenizer): the same normalizer, split and decoder as Qwen2's
/// own `tokenizer.json`; control tokens become special added tokens, user-defined ones plain
/// added tokens.
pub fn tokenizer_json(meta: &Meta) -> Result<Vec<u8>, LoadError> {
    let model = meta.str("tokenizer.ggml.model").unwrap_or_default();
    let pre = meta.str("tokenizer.ggml.pre").unwrap_or_default();
    if model != "gpt2" || pre != "qwen2" {
        return Err(meta.err(format!("tokenizer {model:?} with pre-tokenizer {pre:?} is not Qwen2's (gpt2, qwen2)")));
    }
    let tokens = meta.strings("tokenizer.ggml.tokens")?;
    let merges = meta.strings("tokenizer.ggml.merges")?;
    let types = meta.uints("tokenizer.ggml.token_type").unwrap_or_default();
    let mut vocab = serde_json::Map::new();
    let mut added = Vec::new();
    for (i, t) in tokens.iter().enumerate() {
        vocab.insert(t.to_string(), i.into());
        let ty = types.get(i).copied().unwrap_or(1);
        if ty == CONTROL || ty == USER_DEFINED {
            added.push(serde_json::json!({
                "id": i, "content": t, "single_word": false, "lstrip": false, "rstrip": false,
                "normalized": false, "special": ty == CONTROL,
            }));
        }
    }
    let json = serde_json::json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": added,
        "normalizer": {"type": "NFC"},
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": QWEN2_SPLIT}, "behavior": "Isolated", "invert": false},
            {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": false},
        ]},
        "post_processor": null,
        "decoder": {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true},
        "model": {
            "type": "BPE", "dropout": null, "unk_token": null, "continuing_subword_prefix": null,
            "end_of_word_suffix": null, "fuse_unk": false, "byte_fallback": false, "ignore_merges": false,
            "vocab": vocab, "merges": merges,
        },
    });
    serde_json::to_vec(&json).map_err(|e| LoadError::Tokenizer(e.to_string()))
}

/// Qwen2's pre-tokenizer split (from its `tokenizer.json`).
const QWEN2_SPLIT: &str =
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// `tokenizer.chat_template`.
pub fn chat_template(meta: &Meta) -> Option<String> {
    meta.str("tokenizer.chat_template").map(str::to_string)
}

/// Stop ids (the file's EOS and the chat-turn ends) and the sampling defaults the file
/// records (`general.sampling.*`), if any.
pub fn generation(meta: &Meta) -> GenerationConfig {
    let tokens = meta.strings("tokenizer.ggml.tokens").unwrap_or_default();
    let mut eos: Vec<u32> = meta.uint("tokenizer.ggml.eos_token_id").map(|v| v as u32).into_iter().collect();
    for t in ["<|im_end|>", "<|endoftext|>"] {
        if let Some(i) = token_id(&tokens, t).filter(|i| !eos.contains(i)) {
            eos.push(i);
        }
    }
    GenerationConfig {
        eos_token_id: eos,
        temperature: meta.float("general.sampling.temp").map(|v| v as f32),
        top_k: meta.uint("general.sampling.top_k").map(|v| v as usize),
        top_p: meta.float("general.sampling.top_p").map(|v| v as f32),
        repetition_penalty: None,
        do_sample: None,
    }
}

/// The vision config of an `mmproj` file whose tensors (llama.cpp names) are `tensors`.
pub fn vision_config(meta: &Meta, tensors: &[TensorEntry]) -> Result<(Family, VisionConfig), LoadError> {
    let family = mmproj_family(meta)?;
    let shape = |name: &str| tensors.iter().find(|t| t.name == name).map(|t| t.shape.clone());
    let depth = meta.need_uint("clip.vision.block_count")?;
    let out_hidden_size = shape("mm.2.weight")
        .and_then(|s| s.first().copied())
        .ok_or_else(|| LoadError::MissingTensor("mm.2.weight".into()))?;
    let qwen3 = family == Family::Qwen3Vl;
    let fullatt_block_indexes = match meta.uint("clip.vision.n_wa_pattern") {
        Some(n) if family == Family::Qwen25Vl && n > 0 => {
            (1..).map(|k| k * n as usize - 1).take_while(|&i| i < depth).collect()
        }
        _ => Vec::new(),
    };
    let deepstack_visual_indexes = match meta.uints("clip.vision.is_deepstack_layers") {
        Some(flags) => flags.iter().enumerate().filter(|(_, f)| **f != 0).map(|(i, _)| i).collect(),
        None => Vec::new(),
    };
    let cfg = VisionConfig {
        depth,
        hidden_size: meta.need_uint("clip.vision.embedding_length")?,
        num_heads: meta.need_uint("clip.vision.attention.head_count")?,
        intermediate_size: meta.need_uint("clip.vision.feed_forward_length")?,
        out_hidden_size,
        patch_size: meta.need_uint("clip.vision.patch_size")?,
        temporal_patch_size: 2,
        spatial_merge_size: meta.uint("clip.vision.spatial_merge_size").map_or(2, |v| v as usize),
        in_channels: 3,
        hidden_act: match family {
            Family::Qwen2Vl => "quick_gelu",
            Family::Qwen25Vl => "silu",
            Family::Qwen3Vl => "gelu_pytorch_tanh",
        }
        .into(),
        window_size: if family == Family::Qwen25Vl {
            meta.uint("clip.vision.window_size").map_or(112, |v| v as usize)
        } else {
            0
        },
        fullatt_block_indexes,
        num_position_embeddings: if qwen3 {
            shape("v.position_embd.weight")
                .and_then(|s| s.first().copied())
                .ok_or_else(|| LoadError::MissingTensor("v.position_embd.weight".into()))?
        } else {
            0
        },
        deepstack_visual_indexes,
        rope_theta: 10000.0,
    };
    if cfg.num_heads == 0 || !cfg.hidden_size.is_multiple_of(cfg.num_heads) || cfg.patch_size == 0 {
        return Err(meta.err(format!("inconsistent vision config {cfg:?}")));
    }
    Ok((family, cfg))
}

/// Image preprocessing from the `mmproj` file: patch and merge sizes, mean and std, and the
/// pixel caps when the file records them (else the family's published ones).
pub fn preprocess(meta: &Meta, family: Family) -> PreprocessConfig {
    let d = if family == Family::Qwen3Vl { PreprocessConfig::qwen3_vl() } else { PreprocessConfig::qwen2_vl() };
    let u = |k: &str, dflt: usize| meta.uint(k).map_or(dflt, |v| v as usize);
    PreprocessConfig {
        patch_size: u("clip.vision.patch_size", d.patch_size),
        merge_size: u("clip.vision.spatial_merge_size", d.merge_size),
        temporal_patch_size: d.temporal_patch_size,
        min_pixels: u("clip.vision.image_min_pixels", d.min_pixels),
        max_pixels: u("clip.vision.image_max_pixels", d.max_pixels),
        image_mean: meta.floats3("clip.vision.image_mean").unwrap_or(d.image_mean),
        image_std: meta.floats3("clip.vision.image_std").unwrap_or(d.image_std),
    }
}

/// Where an `mmproj` tensor goes under the Hugging Face names (prefix `visual.`): the
/// family's leaf names, DeepStack mergers renumbered from block indexes to list positions.
/// `v.patch_embd.weight` and `v.patch_embd.weight.1` are the two temporal slices of the
/// Conv3d kernel; they map to [`PATCH_SLICES`] and are joined on read. Qwen2/2.5-VL files
/// split the fused qkv into `attn.q`, `attn.k`, `attn.v`.
pub fn mmproj_hf_name(gguf: &str, family: Family, deepstack: &[usize]) -> Option<String> {
    // `v.patch_embd.weight.1`: the suffix is the slice number.
    if gguf == "v.patch_embd.weight.1" {
        return Some(PATCH_SLICES[1].to_string());
    }
    let (stem, kind) = gguf.rsplit_once('.')?;
    if stem == "v.patch_embd" {
        return Some(if kind == "weight" {
            PATCH_SLICES[0].to_string()
        } else {
            format!("visual.patch_embed.proj.{kind}")
        });
    }
    let qwen3 = family == Family::Qwen3Vl;
    let leaf = match stem {
        "v.position_embd" => "pos_embed".to_string(),
        "v.post_ln" => (if qwen3 { "merger.norm" } else { "merger.ln_q" }).to_string(),
        "mm.0" => (if qwen3 { "merger.linear_fc1" } else { "merger.mlp.0" }).to_string(),
        "mm.2" => (if qwen3 { "merger.linear_fc2" } else { "merger.mlp.2" }).to_string(),
        _ => {
            if let Some(rest) = stem.strip_prefix("v.deepstack.") {
                let (block, part) = rest.split_once('.')?;
                let k = deepstack.iter().position(|&b| b.to_string() == block)?;
                let part = match part {
                    "norm" => "norm",
                    "fc1" => "linear_fc1",
                    "fc2" => "linear_fc2",
                    _ => return None,
                };
                format!("deepstack_merger_list.{k}.{part}")
            } else {
                let (block, part) = stem.strip_prefix("v.blk.")?.split_once('.')?;
                let block: usize = block.parse().ok()?;
                let part = match (part, family) {
                    ("ln1", _) => "norm1",
                    ("ln2", _) => "norm2",
                    ("attn_qkv", _) => "attn.qkv",
                    ("attn_q", _) => "attn.q",
                    ("attn_k", _) => "attn.k",
                    ("attn_v", _) => "attn.v",
                    ("attn_out", _) => "attn.proj",
                    ("ffn_up", Family::Qwen2Vl) => "mlp.fc1",
                    ("ffn_down", Family::Qwen2Vl) => "mlp.fc2",
                    ("ffn_up", Family::Qwen25Vl) => "mlp.up_proj",
                    ("ffn_gate", Family::Qwen25Vl) => "mlp.gate_proj",
                    ("ffn_down", Family::Qwen25Vl) => "mlp.down_proj",
                    ("ffn_up", Family::Qwen3Vl) => "mlp.linear_fc1",
                    ("ffn_down", Family::Qwen3Vl) => "mlp.linear_fc2",
                    _ => return None,
                };
                format!("blocks.{block}.{part}")
            }
        }
    };
    Some(format!("visual.{leaf}.{kind}"))
}

/// The names the two temporal slices of an `mmproj` patch embedding get before they are
/// joined into `visual.patch_embed.proj.weight`.
pub const PATCH_SLICES: [&str; 2] = ["visual.patch_embed.proj.weight@t0", "visual.patch_embed.proj.weight@t1"];

/// Joins the temporal slices `[out, c, p, p]` of a patch embedding into the Conv3d kernel
/// `[out, c, 2, p, p]` (values of `elem` bytes).
pub fn join_patch_slices(a: &[u8], b: &[u8], shape: &[usize], elem: usize) -> Vec<u8> {
    let plane = shape[2..].iter().product::<usize>() * elem;
    let mut out = Vec::with_capacity(a.len() * 2);
    for (x, y) in a.chunks_exact(plane).zip(b.chunks_exact(plane)) {
        out.extend_from_slice(x);
        out.extend_from_slice(y);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mmproj_names_map_per_family() {
        let q3 = |g| mmproj_hf_name(g, Family::Qwen3Vl, &[5, 11, 17]);
        assert_eq!(q3("v.blk.3.attn_qkv.weight").unwrap(), "visual.blocks.3.attn.qkv.weight");
        assert_eq!(q3("v.blk.3.ffn_up.bias").unwrap(), "visual.blocks.3.mlp.linear_fc1.bias");
        assert_eq!(q3("v.deepstack.11.fc2.weight").unwrap(), "visual.deepstack_merger_list.1.linear_fc2.weight");
        assert_eq!(q3("v.deepstack.12.fc2.weight"), None);
        assert_eq!(q3("v.post_ln.bias").unwrap(), "visual.merger.norm.bias");
        assert_eq!(q3("mm.2.weight").unwrap(), "visual.merger.linear_fc2.weight");
        assert_eq!(q3("v.position_embd.weight").unwrap(), "visual.pos_embed.weight");
        assert_eq!(q3("v.patch_embd.weight").unwrap(), PATCH_SLICES[0]);
        assert_eq!(q3("v.patch_embd.weight.1").unwrap(), PATCH_SLICES[1]);
        assert_eq!(q3("v.patch_embd.bias").unwrap(), "visual.patch_embed.proj.bias");
        let q25 = |g| mmproj_hf_name(g, Family::Qwen25Vl, &[]);
        assert_eq!(q25("v.blk.0.ffn_gate.weight").unwrap(), "visual.blocks.0.mlp.gate_proj.weight");
        assert_eq!(q25("v.blk.0.attn_k.bias").unwrap(), "visual.blocks.0.attn.k.bias");
        assert_eq!(q25("mm.0.weight").unwrap(), "visual.merger.mlp.0.weight");
        assert_eq!(
            mmproj_hf_name("v.blk.1.ffn_up.weight", Family::Qwen2Vl, &[]).unwrap(),
            "visual.blocks.1.mlp.fc1.weight"
        );
        assert_eq!(q25("token_embd.weight"), None);
    }

    #[test]
    fn patch_slices_interleave_per_channel() {
        // out 1, c 2, p 1: a = [a0, a1], b = [b0, b1] → [a0, b0, a1, b1].
        let j = join_patch_slices(&[1, 2], &[3, 4], &[1, 2, 1, 1], 1);
        assert_eq!(j, vec![1, 3, 2, 4]);
    }
}
