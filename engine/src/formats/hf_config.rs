//! Hugging Face `config.json` for the Qwen-VL families, in both layouts: the nested one that
//! transformers 5 writes (`text_config` with `rope_parameters`) and the one the Hub publishes
//! (Qwen2/2.5-VL: flat text fields with `rope_theta` and `rope_scaling: {type: mrope}`;
//! Qwen3-VL: nested `text_config` with `rope_scaling`). Field names are the HF ones.

use serde::Deserialize;

use crate::error::LoadError;

/// The three supported model families (`model_type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub enum Family {
    Qwen2Vl,
    Qwen25Vl,
    Qwen3Vl,
}

impl Family {
    pub fn from_model_type(t: &str) -> Result<Self, LoadError> {
        match t {
            "qwen2_vl" => Ok(Family::Qwen2Vl),
            "qwen2_5_vl" => Ok(Family::Qwen25Vl),
            "qwen3_vl" => Ok(Family::Qwen3Vl),
            other => Err(LoadError::Architecture(other.to_string())),
        }
    }
}

/// The text tower's hyper-parameters, normalised over both layouts.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct TextConfig {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub num_key_value_heads: usize,
    pub head_dim: usize,
    pub rms_norm_eps: f32,
    pub rope_theta: f64,
    pub mrope_section: [u32; 3],
    /// Qwen3-VL's interleaved M-RoPE (`apply_interleaved_mrope`).
    pub mrope_interleaved: bool,
    /// Biases on q/k/v projections (Qwen2/2.5: always; Qwen3: `attention_bias`).
    pub attention_bias: bool,
    /// Qwen3's per-head RMSNorm on q and k before RoPE.
    pub qk_norm: bool,
    pub tie_word_embeddings: bool,
    pub max_position_embeddings: usize,
}

/// A whole model config: family, text tower, the vision token ids.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct ModelConfig {
    pub family: Family,
    pub text: TextConfig,
    pub image_token_id: u32,
    pub video_token_id: u32,
    pub vision_start_token_id: u32,
    pub vision_end_token_id: u32,
}

#[derive(Deserialize, Default)]
struct RopeBlock {
    rope_theta: Option<f64>,
    mrope_section: Option<Vec<u32>>,
    mrope_interleaved: Option<bool>,
}

#[derive(Deserialize)]
struct RawText {
    vocab_size: usize,
    hidden_size: usize,
    intermediate_size: usize,
    num_hidden_layers: usize,
    num_attention_heads: usize,
    num_key_value_heads: Option<usize>,
    head_dim: Option<usize>,
    rms_norm_eps: Option<f32>,
    rope_theta: Option<f64>,
    rope_scaling: Option<RopeBlock>,
    rope_parameters: Option<RopeBlock>,
    attention_bias: Option<bool>,
    tie_word_embeddings: Option<bool>,
    max_position_embeddings: Option<usize>,
}

#[derive(Deserialize)]
struct RawTop {
    model_type: Option<String>,
    text_config: Option<serde_json::Value>,
    tie_word_embeddings: Option<bool>,
    image_token_id: Option<u32>,
    video_token_id: Option<u32>,
    vision_start_token_id: Option<u32>,
    vision_end_token_id: Option<u32>,
}

/// Parses `config.json` bytes.
pub fn parse(bytes: &[u8]) -> Result<ModelConfig, LoadError> {
    let json: serde_json::Value = serde_json::from_slice(bytes)
        .map_err(|e| LoadError::Json { file: "config.json".into(), message: e.to_string() })?;
    let top: RawTop = serde_json::from_value(json.clone()).map_err(|e| LoadError::Config(e.to_string()))?;
    let model_type = top.model_type.clone().ok_or_else(|| LoadError::Config("no model_type".into()))?;
    let family = Family::from_model_type(&model_type)?;
    let text_json = top.text_config.clone().unwrap_or(json);
    let raw: RawText = serde_json::from_value(text_json).map_err(|e| LoadError::Config(format!("text config: {e}")))?;
    let rope = raw.rope_parameters.or(raw.rope_scaling).unwrap_or_default();
    let head_dim = raw.head_dim.unwrap_or(raw.hidden_size / raw.num_attention_heads.max(1));
    let section = rope
        .mrope_section
        .ok_or_else(|| LoadError::Config("no mrope_section in rope_parameters or rope_scaling".into()))?;
    let mrope_section: [u32; 3] = section
        .get(..3)
        .and_then(|s| s.try_into().ok())
        .ok_or_else(|| LoadError::Config(format!("mrope_section {section:?} needs three entries")))?;
    if mrope_section.iter().sum::<u32>() as usize * 2 != head_dim {
        return Err(LoadError::Config(format!("mrope_section {mrope_section:?} does not cover head_dim {head_dim}")));
    }
    let heads = raw.num_attention_heads;
    let kv_heads = raw.num_key_value_heads.unwrap_or(heads);
    if heads == 0 || kv_heads == 0 || !heads.is_multiple_of(kv_heads) || raw.hidden_size == 0 || raw.vocab_size == 0 {
        return Err(LoadError::Config(format!(
            "inconsistent sizes: heads {heads}, kv heads {kv_heads}, hidden {}",
            raw.hidden_size
        )));
    }
    let qwen3 = family == Family::Qwen3Vl;
    let text = TextConfig {
        vocab_size: raw.vocab_size,
        hidden_size: raw.hidden_size,
        intermediate_size: raw.intermediate_size,
        num_hidden_layers: raw.num_hidden_layers,
        num_attention_heads: heads,
        num_key_value_heads: kv_heads,
        head_dim,
        rms_norm_eps: raw.rms_norm_eps.unwrap_or(1e-6),
        rope_theta: rope.rope_theta.or(raw.rope_theta).unwrap_or(if qwen3 { 5e6 } else { 1e6 }),
        mrope_section,
        mrope_interleaved: rope.mrope_interleaved.unwrap_or(qwen3) || qwen3,
        attention_bias: if qwen3 { raw.attention_bias.unwrap_or(false) } else { true },
        qk_norm: qwen3,
        tie_word_embeddings: top.tie_word_embeddings.or(raw.tie_word_embeddings).unwrap_or(false),
        max_position_embeddings: raw.max_position_embeddings.unwrap_or(32768),
    };
    Ok(ModelConfig {
        family,
        text,
        image_token_id: top.image_token_id.unwrap_or(151655),
        video_token_id: top.video_token_id.unwrap_or(151656),
        vision_start_token_id: top.vision_start_token_id.unwrap_or(151652),
        vision_end_token_id: top.vision_end_token_id.unwrap_or(151653),
    })
}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    use super::*;

    fn fixture(family: &str, file: &str) -> Vec<u8> {
        let path = format!("{}/../tests/fixtures/{family}/{file}", env!("CARGO_MANIFEST_DIR"));
        std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    #[test]
    fn both_layouts_give_the_same_config() {
        for family in ["qwen2_vl", "qwen2_5_vl", "qwen3_vl"] {
            let hub = parse(&fixture(family, "config.json")).unwrap();
            let tf5 = parse(&fixture(family, "config.transformers5.json")).unwrap();
            assert_eq!(hub, tf5, "{family}");
        }
    }

    #[test]
    fn reads_the_published_qwen2_vl_2b_shape() {
        let cfg = br#"{"model_type":"qwen2_vl","hidden_size":1536,"intermediate_size":8960,
            "num_hidden_layers":28,"num_attention_heads":12,"num_key_value_heads":2,"vocab_size":151936,
            "rope_theta":1000000.0,"rope_scaling":{"type":"mrope","mrope_section":[16,24,24]},
            "tie_word_embeddings":true,"vision_config":{"in_chans":3}}"#;
        let c = parse(cfg).unwrap();
        assert_eq!((c.text.head_dim, c.text.mrope_section, c.text.mrope_interleaved), (128, [16, 24, 24], false));
        assert!(c.text.attention_bias && c.text.tie_word_embeddings && !c.text.qk_norm);
    }

    #[test]
    fn bad_configs_are_clear_errors() {
        assert!(matches!(parse(br#"{"model_type":"llama"}"#), Err(LoadError::Architecture(_))));
        assert!(matches!(parse(b"{"), Err(LoadError::Json { .. })));
        let missing = br#"{"model_type":"qwen3_vl","text_config":{"hidden_size":64}}"#;
        assert!(matches!(parse(missing), Err(LoadError::Config(_))));
        let bad_section = br#"{"model_type":"qwen3_vl","text_config":{"vocab_size":10,"hidden_size":64,
            "intermediate_size":8,"num_hidden_layers":1,"num_attention_heads":4,"head_dim":16,
            "rope_scaling":{"mrope_section":[1,1,1]}}}"#;
        assert!(parse(bad_section).unwrap_err().to_string().contains("mrope_section"));
    }
}
