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

/// The vision tower's hyper-parameters (`vision_config`), normalised over the three families:
/// Qwen2-VL names its width `embed_dim` and its output `hidden_size` and gives `mlp_ratio`;
/// Qwen2.5-VL and Qwen3-VL name the width `hidden_size` and the output `out_hidden_size`.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct VisionConfig {
    pub depth: usize,
    /// Width of the blocks.
    pub hidden_size: usize,
    pub num_heads: usize,
    pub intermediate_size: usize,
    /// Width of the merger output: the text tower's hidden size.
    pub out_hidden_size: usize,
    pub patch_size: usize,
    pub temporal_patch_size: usize,
    pub spatial_merge_size: usize,
    pub in_channels: usize,
    /// transformers' `hidden_act` of the block MLP: "quick_gelu", "silu" (SwiGLU) or
    /// "gelu_pytorch_tanh".
    pub hidden_act: String,
    /// Qwen2.5-VL's attention window in pixels (0: every block attends over the whole image).
    pub window_size: usize,
    /// Qwen2.5-VL's blocks that attend over the whole image despite the windows.
    pub fullatt_block_indexes: Vec<usize>,
    /// Qwen3-VL's learned position table (`num_position_embeddings` = side², 0: none).
    pub num_position_embeddings: usize,
    /// Qwen3-VL's DeepStack taps: the blocks whose outputs feed the first text layers.
    pub deepstack_visual_indexes: Vec<usize>,
    /// θ of the 2-D rotary (10000 in every family).
    pub rope_theta: f64,
}

impl VisionConfig {
    pub fn head_dim(&self) -> usize {
        self.hidden_size / self.num_heads.max(1)
    }

    /// Qwen2.5-VL's blocks: SwiGLU MLP (`hidden_act` "silu") and RMSNorm everywhere.
    pub fn swiglu(&self) -> bool {
        self.hidden_act == "silu"
    }

    /// Qwen3-VL's layout: a learned position table, a biased patch embedding, `linear_fc*`
    /// names and DeepStack mergers.
    pub fn qwen3(&self) -> bool {
        self.num_position_embeddings > 0
    }

    /// Values per flattened patch: channels × temporal patch × patch².
    pub fn patch_dim(&self) -> usize {
        self.in_channels * self.temporal_patch_size * self.patch_size * self.patch_size
    }
}

#[derive(Deserialize, Default)]
struct RawVision {
    depth: Option<usize>,
    embed_dim: Option<usize>,
    hidden_size: Option<usize>,
    num_heads: Option<usize>,
    mlp_ratio: Option<f64>,
    intermediate_size: Option<usize>,
    out_hidden_size: Option<usize>,
    patch_size: Option<usize>,
    temporal_patch_size: Option<usize>,
    spatial_merge_size: Option<usize>,
    in_channels: Option<usize>,
    in_chans: Option<usize>,
    hidden_act: Option<String>,
    window_size: Option<usize>,
    fullatt_block_indexes: Option<Vec<usize>>,
    num_position_embeddings: Option<usize>,
    deepstack_visual_indexes: Option<Vec<usize>>,
    rope_parameters: Option<RopeBlock>,
}

/// The vision config of `family` with the published models' values where a field is missing.
fn vision_config(family: Family, raw: RawVision, text_hidden: usize) -> Result<VisionConfig, LoadError> {
    let c = match family {
        Family::Qwen2Vl => {
            let width = raw.embed_dim.unwrap_or(1280);
            VisionConfig {
                depth: raw.depth.unwrap_or(32),
                hidden_size: width,
                num_heads: raw.num_heads.unwrap_or(16),
                intermediate_size: (width as f64 * raw.mlp_ratio.unwrap_or(4.0)) as usize,
                out_hidden_size: raw.hidden_size.unwrap_or(text_hidden),
                patch_size: raw.patch_size.unwrap_or(14),
                temporal_patch_size: raw.temporal_patch_size.unwrap_or(2),
                spatial_merge_size: raw.spatial_merge_size.unwrap_or(2),
                in_channels: raw.in_channels.or(raw.in_chans).unwrap_or(3),
                hidden_act: raw.hidden_act.unwrap_or_else(|| "quick_gelu".into()),
                window_size: 0,
                fullatt_block_indexes: Vec::new(),
                num_position_embeddings: 0,
                deepstack_visual_indexes: Vec::new(),
                rope_theta: 10000.0,
            }
        }
        Family::Qwen25Vl | Family::Qwen3Vl => {
            let q3 = family == Family::Qwen3Vl;
            VisionConfig {
                depth: raw.depth.unwrap_or(if q3 { 24 } else { 32 }),
                hidden_size: raw.hidden_size.unwrap_or(if q3 { 1024 } else { 1280 }),
                num_heads: raw.num_heads.unwrap_or(16),
                intermediate_size: raw.intermediate_size.unwrap_or(if q3 { 4096 } else { 3420 }),
                out_hidden_size: raw.out_hidden_size.unwrap_or(text_hidden),
                patch_size: raw.patch_size.unwrap_or(if q3 { 16 } else { 14 }),
                temporal_patch_size: raw.temporal_patch_size.unwrap_or(2),
                spatial_merge_size: raw.spatial_merge_size.unwrap_or(2),
                in_channels: raw.in_channels.or(raw.in_chans).unwrap_or(3),
                hidden_act: raw.hidden_act.unwrap_or_else(|| (if q3 { "gelu_pytorch_tanh" } else { "silu" }).into()),
                window_size: if q3 { 0 } else { raw.window_size.unwrap_or(112) },
                fullatt_block_indexes: if q3 { Vec::new() } else { raw.fullatt_block_indexes.unwrap_or_default() },
                num_position_embeddings: if q3 { raw.num_position_embeddings.unwrap_or(2304) } else { 0 },
                deepstack_visual_indexes: if q3 {
                    raw.deepstack_visual_indexes.unwrap_or_default()
                } else {
                    Vec::new()
                },
                rope_theta: 10000.0,
            }
        }
    };
    let c = VisionConfig { rope_theta: raw.rope_parameters.and_then(|r| r.rope_theta).unwrap_or(c.rope_theta), ..c };
    let side = (c.num_position_embeddings as f64).sqrt() as usize;
    if c.num_heads == 0
        || !c.hidden_size.is_multiple_of(c.num_heads)
        || !c.head_dim().is_multiple_of(4)
        || c.spatial_merge_size == 0
        || c.patch_size == 0
        || side * side != c.num_position_embeddings
        || c.out_hidden_size != text_hidden
    {
        return Err(LoadError::Config(format!("inconsistent vision config {c:?} for text width {text_hidden}")));
    }
    Ok(c)
}

/// A whole model config: family, text and vision towers, the vision token ids.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct ModelConfig {
    pub family: Family,
    pub text: TextConfig,
    /// `None` when the config has no `vision_config` (a text-only checkpoint).
    pub vision: Option<VisionConfig>,
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
    vision_config: Option<serde_json::Value>,
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
    let vision = match top.vision_config {
        Some(v) => {
            let raw: RawVision =
                serde_json::from_value(v).map_err(|e| LoadError::Config(format!("vision config: {e}")))?;
            Some(vision_config(family, raw, text.hidden_size)?)
        }
        None => None,
    };
    Ok(ModelConfig {
        family,
        text,
        vision,
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
    fn reads_the_published_vision_configs() {
        let q2 = br#"{"model_type":"qwen2_vl","hidden_size":1536,"intermediate_size":8960,
            "num_hidden_layers":28,"num_attention_heads":12,"num_key_value_heads":2,"vocab_size":151936,
            "rope_scaling":{"type":"mrope","mrope_section":[16,24,24]},
            "vision_config":{"depth":32,"embed_dim":1280,"mlp_ratio":4,"num_heads":16,"in_chans":3,
            "hidden_size":1536,"patch_size":14,"spatial_merge_size":2,"temporal_patch_size":2}}"#;
        let v = parse(q2).unwrap().vision.unwrap();
        assert_eq!((v.hidden_size, v.intermediate_size, v.out_hidden_size, v.head_dim()), (1280, 5120, 1536, 80));
        assert_eq!((v.hidden_act.as_str(), v.patch_dim()), ("quick_gelu", 1176));
        let q25 = br#"{"model_type":"qwen2_5_vl","hidden_size":2048,"intermediate_size":11008,
            "num_hidden_layers":36,"num_attention_heads":16,"num_key_value_heads":2,"vocab_size":151936,
            "rope_scaling":{"type":"mrope","mrope_section":[16,24,24]},
            "vision_config":{"depth":32,"hidden_act":"silu","hidden_size":1280,"intermediate_size":3420,
            "num_heads":16,"in_chans":3,"out_hidden_size":2048,"patch_size":14,"spatial_merge_size":2,
            "window_size":112,"fullatt_block_indexes":[7,15,23,31],"temporal_patch_size":2}}"#;
        let v = parse(q25).unwrap().vision.unwrap();
        assert_eq!(
            (v.window_size, v.fullatt_block_indexes.clone(), v.intermediate_size),
            (112, vec![7, 15, 23, 31], 3420)
        );
        let q3 = br#"{"model_type":"qwen3_vl","text_config":{"vocab_size":151936,"hidden_size":2048,
            "intermediate_size":6144,"num_hidden_layers":28,"num_attention_heads":16,"num_key_value_heads":8,
            "head_dim":128,"rope_scaling":{"mrope_section":[24,20,20],"mrope_interleaved":true}},
            "vision_config":{"deepstack_visual_indexes":[5,11,17],"depth":24,"hidden_act":"gelu_pytorch_tanh",
            "hidden_size":1024,"in_channels":3,"intermediate_size":4096,"num_heads":16,
            "num_position_embeddings":2304,"out_hidden_size":2048,"patch_size":16,"spatial_merge_size":2,
            "temporal_patch_size":2}}"#;
        let v = parse(q3).unwrap().vision.unwrap();
        assert_eq!(
            (v.deepstack_visual_indexes.clone(), v.num_position_embeddings, v.head_dim()),
            (vec![5, 11, 17], 2304, 64)
        );
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
