//! Whisper's configuration and special tokens, from a Hugging Face folder (`config.json`,
//! `generation_config.json`, `tokenizer.json`) or a faster-whisper one (CTranslate2
//! `model.bin`, its `config.json` of suppressed ids, `tokenizer.json`). CTranslate2's variables
//! are mapped to the Hugging Face names here, so the model only sees those.

use std::collections::{BTreeMap, HashMap};

use serde::Deserialize;

use crate::error::LoadError;
use crate::formats::ctranslate2::{Header, Variable};
use crate::formats::safetensors::{Encoding, TensorEntry};
use crate::tensor::DType;

/// transformers' `WhisperConfig` (the fields the graph needs; HF names).
#[derive(Clone, Debug, PartialEq, Deserialize, serde::Serialize)]
pub struct WhisperConfig {
    pub d_model: usize,
    pub encoder_layers: usize,
    pub encoder_attention_heads: usize,
    pub decoder_layers: usize,
    pub decoder_attention_heads: usize,
    pub encoder_ffn_dim: usize,
    pub decoder_ffn_dim: usize,
    pub num_mel_bins: usize,
    pub max_source_positions: usize,
    pub max_target_positions: usize,
    pub vocab_size: usize,
    #[serde(default)]
    pub scale_embedding: bool,
    #[serde(default = "gelu")]
    pub activation_function: String,
}

fn gelu() -> String {
    "gelu".into()
}

impl WhisperConfig {
    pub fn parse(bytes: &[u8]) -> Result<Self, LoadError> {
        let c: WhisperConfig = serde_json::from_slice(bytes)
            .map_err(|e| LoadError::Json { file: "config.json".into(), message: e.to_string() })?;
        c.validate()?;
        Ok(c)
    }

    /// The checks every source shares: widths that split into heads, the GELU the graph runs,
    /// and an encoder whose two convolutions turn a 30 s window into its positions.
    pub fn validate(&self) -> Result<(), LoadError> {
        let bad = |m: String| Err(LoadError::Config(m));
        if self.activation_function != "gelu" {
            return bad(format!("activation_function {:?} (Whisper uses \"gelu\")", self.activation_function));
        }
        for (what, heads) in [("encoder", self.encoder_attention_heads), ("decoder", self.decoder_attention_heads)] {
            if heads == 0 || !self.d_model.is_multiple_of(heads) || self.d_model / heads > 128 {
                return bad(format!(
                    "d_model {} does not split into {heads} {what} heads of at most 128",
                    self.d_model
                ));
            }
        }
        if self.d_model == 0 || self.vocab_size == 0 || self.num_mel_bins == 0 || self.max_target_positions == 0 {
            return bad("zero width, vocabulary, mel bins or target positions".into());
        }
        if self.max_source_positions != 1500 {
            return bad(format!("max_source_positions {} (30 s windows need 1500)", self.max_source_positions));
        }
        Ok(())
    }

    pub fn is_multilingual(&self) -> bool {
        self.vocab_size >= 51865
    }
}

/// A CTranslate2 variable's engine type.
fn ct2_dtype(name: &str, v: &Variable) -> Result<DType, LoadError> {
    match v.dtype {
        0 => Ok(DType::F32),
        4 => Ok(DType::F16),
        5 => Ok(DType::BF16),
        d => Err(LoadError::DType {
            tensor: name.to_string(),
            dtype: format!("CTranslate2 type {d} (int8 conversions are not read; use a float16 one)"),
        }),
    }
}

/// Puts one Hugging Face tensor name as a row part of a CTranslate2 variable:
/// `(hf name, ct2 variable, part, parts)`.
type Put<'a> = dyn FnMut(String, &str, usize, usize) -> Result<(), LoadError> + 'a;

/// The Hugging Face config and tensor entries of a CTranslate2 `WhisperSpec` in `file`.
/// Fused projections become row ranges of their variable: self-attention's `linear_0` is
/// q, k, v (the k part of its bias is zero: Whisper's k_proj has none), cross-attention's
/// `linear_1` is k, v.
pub fn from_ctranslate2(file: &str, h: &Header) -> Result<(WhisperConfig, HashMap<String, TensorEntry>), LoadError> {
    if h.spec != "WhisperSpec" {
        return Err(LoadError::Architecture(format!("CTranslate2 {}", h.spec)));
    }
    let var = |n: &str| h.variables.get(n).ok_or_else(|| LoadError::MissingTensor(format!("{file}: {n}")));
    let scalar = |n: &str| var(n).map(|v| v.scalar.unwrap_or(0).max(0) as usize);
    let dims = |n: &str, i: usize| var(n).map(|v| v.shape.get(i).copied().unwrap_or(0));
    let count = |prefix: &str| {
        (0..).take_while(|i| h.variables.contains_key(&format!("{prefix}/layer_{i}/ffn/linear_0/weight"))).count()
    };
    let cfg = WhisperConfig {
        d_model: dims("encoder/conv1/weight", 0)?,
        encoder_layers: count("encoder"),
        encoder_attention_heads: scalar("encoder/num_heads")?,
        decoder_layers: count("decoder"),
        decoder_attention_heads: scalar("decoder/num_heads")?,
        encoder_ffn_dim: dims("encoder/layer_0/ffn/linear_0/weight", 0)?,
        decoder_ffn_dim: dims("decoder/layer_0/ffn/linear_0/weight", 0)?,
        num_mel_bins: dims("encoder/conv1/weight", 1)?,
        max_source_positions: dims("encoder/position_encodings/encodings", 0)?,
        max_target_positions: dims("decoder/position_encodings/encodings", 0)?,
        vocab_size: dims("decoder/embeddings/weight", 0)?,
        scale_embedding: scalar("decoder/scale_embeddings").unwrap_or(0) != 0,
        activation_function: gelu(),
    };
    cfg.validate()?;
    let d = cfg.d_model;
    let mut out = HashMap::new();
    // `part` of `parts` equal row ranges of variable `n` (a bias cuts the same way).
    let mut put = |hf: String, n: &str, part: usize, parts: usize| -> Result<(), LoadError> {
        let v = var(n)?;
        let dtype = ct2_dtype(n, v)?;
        let rows = v.shape.first().copied().unwrap_or(1);
        if rows % parts != 0 {
            return Err(LoadError::Shape { tensor: n.to_string(), expected: vec![parts * d], found: v.shape.clone() });
        }
        let row_bytes = v.len / rows.max(1) as u64;
        let mut shape = v.shape.clone();
        shape[0] = rows / parts;
        let len = row_bytes * shape[0] as u64;
        let e = TensorEntry {
            name: hf.clone(),
            file: file.to_string(),
            dtype,
            encoding: Encoding::Raw,
            shape,
            offset: v.offset + part as u64 * len,
            len,
        };
        out.insert(hf, e);
        Ok(())
    };
    let norm = |put: &mut Put, hf: &str, ct: &str| {
        put(format!("{hf}.weight"), &format!("{ct}/gamma"), 0, 1)?;
        put(format!("{hf}.bias"), &format!("{ct}/beta"), 0, 1)
    };
    let linear = |put: &mut Put, hf: &str, ct: &str| {
        put(format!("{hf}.weight"), &format!("{ct}/weight"), 0, 1)?;
        put(format!("{hf}.bias"), &format!("{ct}/bias"), 0, 1)
    };
    // q, k, v (or k, v) from a fused projection; k without its (zero) bias.
    let fused = |put: &mut Put, hf: &str, ct: &str, names: &[&str]| {
        for (i, p) in names.iter().enumerate() {
            put(format!("{hf}.{p}.weight"), &format!("{ct}/weight"), i, names.len())?;
            if *p != "k_proj" {
                put(format!("{hf}.{p}.bias"), &format!("{ct}/bias"), i, names.len())?;
            }
        }
        Ok::<(), LoadError>(())
    };
    for conv in ["conv1", "conv2"] {
        linear(&mut put, &format!("model.encoder.{conv}"), &format!("encoder/{conv}"))?;
    }
    put("model.encoder.embed_positions.weight".into(), "encoder/position_encodings/encodings", 0, 1)?;
    put("model.decoder.embed_positions.weight".into(), "decoder/position_encodings/encodings", 0, 1)?;
    put("model.decoder.embed_tokens.weight".into(), "decoder/embeddings/weight", 0, 1)?;
    for side in ["encoder", "decoder"] {
        let layers = if side == "encoder" { cfg.encoder_layers } else { cfg.decoder_layers };
        for i in 0..layers {
            let (hf, ct) = (format!("model.{side}.layers.{i}"), format!("{side}/layer_{i}"));
            norm(&mut put, &format!("{hf}.self_attn_layer_norm"), &format!("{ct}/self_attention/layer_norm"))?;
            fused(
                &mut put,
                &format!("{hf}.self_attn"),
                &format!("{ct}/self_attention/linear_0"),
                &["q_proj", "k_proj", "v_proj"],
            )?;
            linear(&mut put, &format!("{hf}.self_attn.out_proj"), &format!("{ct}/self_attention/linear_1"))?;
            if side == "decoder" {
                norm(&mut put, &format!("{hf}.encoder_attn_layer_norm"), &format!("{ct}/attention/layer_norm"))?;
                linear(&mut put, &format!("{hf}.encoder_attn.q_proj"), &format!("{ct}/attention/linear_0"))?;
                fused(
                    &mut put,
                    &format!("{hf}.encoder_attn"),
                    &format!("{ct}/attention/linear_1"),
                    &["k_proj", "v_proj"],
                )?;
                linear(&mut put, &format!("{hf}.encoder_attn.out_proj"), &format!("{ct}/attention/linear_2"))?;
            }
            norm(&mut put, &format!("{hf}.final_layer_norm"), &format!("{ct}/ffn/layer_norm"))?;
            linear(&mut put, &format!("{hf}.fc1"), &format!("{ct}/ffn/linear_0"))?;
            linear(&mut put, &format!("{hf}.fc2"), &format!("{ct}/ffn/linear_1"))?;
        }
        norm(&mut put, &format!("model.{side}.layer_norm"), &format!("{side}/layer_norm"))?;
    }
    Ok((cfg, out))
}

/// The special tokens and decoding rules of a Whisper checkpoint.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct SpeechTokens {
    pub sot: u32,
    pub eot: u32,
    pub no_timestamps: u32,
    /// The first timestamp token (`<|0.00|>`), `no_timestamps + 1`.
    pub timestamp_begin: u32,
    /// `<|nocaptions|>` (`no_timestamps − 1`), whose probability after the start token is the
    /// no-speech probability.
    pub no_speech: u32,
    pub transcribe: Option<u32>,
    pub translate: Option<u32>,
    /// Language codes (`en`) and their tokens, for multilingual checkpoints.
    pub languages: BTreeMap<String, u32>,
    pub multilingual: bool,
    pub suppress_tokens: Vec<u32>,
    pub begin_suppress_tokens: Vec<u32>,
    pub max_initial_timestamp_index: Option<u32>,
    /// Most tokens of a window's sequence, prompt included.
    pub max_length: usize,
    /// Most generated tokens (generation_config's `max_new_tokens`), if set.
    pub max_new_tokens: Option<usize>,
}

/// `generation_config.json` of a Whisper checkpoint (HF names).
#[derive(Deserialize, Default)]
struct GenerationJson {
    decoder_start_token_id: Option<u32>,
    #[serde(default, deserialize_with = "crate::load::one_or_many")]
    eos_token_id: Vec<u32>,
    no_timestamps_token_id: Option<u32>,
    #[serde(default)]
    suppress_tokens: Vec<u32>,
    #[serde(default)]
    begin_suppress_tokens: Vec<u32>,
    #[serde(default)]
    lang_to_id: BTreeMap<String, u32>,
    #[serde(default)]
    task_to_id: BTreeMap<String, u32>,
    is_multilingual: Option<bool>,
    max_initial_timestamp_index: Option<u32>,
    max_length: Option<usize>,
    max_new_tokens: Option<usize>,
}

/// faster-whisper's `config.json` beside a CTranslate2 `model.bin`.
#[derive(Deserialize, Default)]
struct Ct2Json {
    #[serde(default)]
    suppress_ids: Vec<u32>,
    #[serde(default)]
    suppress_ids_begin: Vec<u32>,
    #[serde(default)]
    lang_ids: Vec<u32>,
}

impl SpeechTokens {
    /// From `generation_config.json` where the folder has one, else from the tokenizer's special
    /// tokens and a CTranslate2 `config.json` (`ct2_config`), as faster-whisper reads them.
    /// `token_id` looks a token up in the tokenizer.
    pub fn new(
        cfg: &WhisperConfig,
        generation: Option<&[u8]>,
        ct2_config: Option<&[u8]>,
        token_id: &dyn Fn(&str) -> Option<u32>,
        id_token: &dyn Fn(u32) -> Option<String>,
    ) -> Result<Self, LoadError> {
        let json = |file: &str, e: serde_json::Error| LoadError::Json { file: file.into(), message: e.to_string() };
        let g: GenerationJson = match generation {
            Some(b) => serde_json::from_slice(b).map_err(|e| json("generation_config.json", e))?,
            None => GenerationJson::default(),
        };
        let ct: Ct2Json = match ct2_config {
            Some(b) => serde_json::from_slice(b).map_err(|e| json("config.json", e))?,
            None => Ct2Json::default(),
        };
        let need = |t: &str| token_id(t).ok_or_else(|| LoadError::Tokenizer(format!("no {t} token")));
        let sot = g.decoder_start_token_id.map_or_else(|| need("<|startoftranscript|>"), Ok)?;
        let eot = g.eos_token_id.first().copied().map_or_else(|| need("<|endoftext|>"), Ok)?;
        let no_timestamps = g.no_timestamps_token_id.map_or_else(|| need("<|notimestamps|>"), Ok)?;
        let multilingual = g.is_multilingual.unwrap_or_else(|| cfg.is_multilingual());
        let strip = |t: &str| t.trim_start_matches("<|").trim_end_matches("|>").to_string();
        let mut languages: BTreeMap<String, u32> = g.lang_to_id.iter().map(|(t, &id)| (strip(t), id)).collect();
        if languages.is_empty() && multilingual {
            let ids: Vec<u32> = if ct.lang_ids.is_empty() {
                // The tokens between the start token and the task tokens.
                let end = token_id("<|translate|>").unwrap_or(sot + 1);
                (sot + 1..end).collect()
            } else {
                ct.lang_ids.clone()
            };
            languages = ids.into_iter().filter_map(|id| id_token(id).map(|t| (strip(&t), id))).collect();
        }
        let task = |name: &str| g.task_to_id.get(name).copied().or_else(|| token_id(&format!("<|{name}|>")));
        let suppress_tokens = if generation.is_some() { g.suppress_tokens } else { ct.suppress_ids };
        let begin_suppress_tokens = if generation.is_some() { g.begin_suppress_tokens } else { ct.suppress_ids_begin };
        let max_length = g.max_length.unwrap_or(cfg.max_target_positions).min(cfg.max_target_positions);
        let t = SpeechTokens {
            sot,
            eot,
            no_timestamps,
            timestamp_begin: no_timestamps + 1,
            no_speech: no_timestamps.saturating_sub(1),
            transcribe: task("transcribe"),
            translate: task("translate"),
            languages: if multilingual { languages } else { BTreeMap::new() },
            multilingual,
            suppress_tokens,
            begin_suppress_tokens,
            max_initial_timestamp_index: g.max_initial_timestamp_index.or(Some(50)),
            max_length,
            max_new_tokens: g.max_new_tokens,
        };
        let vocab = cfg.vocab_size as u32;
        let all = [t.sot, t.eot, t.no_timestamps].into_iter().chain(t.suppress_tokens.iter().copied());
        if let Some(bad) = all.chain(t.begin_suppress_tokens.iter().copied()).find(|&id| id >= vocab) {
            return Err(LoadError::Config(format!("special token {bad} outside the vocabulary of {vocab}")));
        }
        if t.timestamp_begin >= vocab {
            return Err(LoadError::Config("no timestamp tokens after <|notimestamps|>".into()));
        }
        Ok(t)
    }
}
