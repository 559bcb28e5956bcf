//! The reference outputs of `tests/fixtures/make_fixtures.py`, shared by the engine's parity
//! tests and the CLI's tests (included with `#[path]`).

use std::path::PathBuf;

#[derive(serde::Deserialize)]
pub struct Reference {
    pub max_new_tokens: usize,
    #[allow(dead_code)]
    pub cases: Vec<Case>,
    #[serde(default)]
    #[allow(dead_code)]
    pub image_cases: Vec<ImageCase>,
}

/// A prompt with images: the pictures (files under `tests/fixtures/images`), the expanded ids,
/// the patch grids and what transformers generated.
#[derive(serde::Deserialize)]
#[allow(dead_code)]
pub struct ImageCase {
    pub name: String,
    pub images: Vec<String>,
    pub prompt: String,
    pub grid_thw: Vec<[usize; 3]>,
    pub prompt_ids: Vec<u32>,
    pub greedy_ids: Vec<u32>,
    pub greedy_text: String,
    pub top5: Vec<Vec<(u32, f32)>>,
    /// The merger output of the first image, `[tokens, hidden]` flattened.
    #[serde(default)]
    pub merger_output: Vec<f32>,
    #[serde(default)]
    pub deepstack_output: Vec<Vec<f32>>,
    pub follow_up: Option<FollowUp>,
}

/// A text turn after an image turn, in the same conversation.
#[derive(serde::Deserialize)]
#[allow(dead_code)]
pub struct FollowUp {
    pub prompt: String,
    pub prompt_ids: Vec<u32>,
    pub greedy_ids: Vec<u32>,
    pub top5: Vec<Vec<(u32, f32)>>,
}

/// Every step's five highest logits within `tol` (relative above 1) of the reference, and the
/// same four highest ids (the fifth may swap with a near-equal neighbour).
#[allow(dead_code)]
pub fn assert_top5(label: &str, got: &[Vec<(u32, f32)>], want: &[Vec<(u32, f32)>], tol: f32) {
    assert_eq!(got.len(), want.len(), "{label}: steps");
    for (step, (got, want)) in got.iter().zip(want).enumerate() {
        for (k, ((gi, gl), (wi, wl))) in got.iter().zip(want).enumerate() {
            let ok = (gl - wl).abs() <= tol * wl.abs().max(1.0);
            assert!(ok, "{label} step {step} top{k}: logit of {gi} is {gl}, reference {wi} {wl}");
        }
        let got_ids: Vec<u32> = got.iter().map(|t| t.0).collect();
        let want_ids: Vec<u32> = want.iter().map(|t| t.0).collect();
        assert_eq!(got_ids[..4], want_ids[..4], "{label} step {step}: top ids");
    }
}

#[derive(serde::Deserialize)]
#[allow(dead_code)]
pub struct Case {
    pub system: Option<String>,
    pub prompt: String,
    pub prompt_ids: Vec<u32>,
    pub greedy_ids: Vec<u32>,
    pub greedy_text: String,
    pub top5: Vec<Vec<(u32, f32)>>,
}

/// `tests/fixtures/<family>` seen from a crate folder.
#[allow(dead_code)]
pub fn fixture(family: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures").join(family)
}

pub fn reference(family: &str) -> Reference {
    let path = fixture(family).join("reference.json");
    serde_json::from_slice(&std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Load options for a llama.cpp pair: a text GGUF and its mmproj vision file.
#[allow(dead_code)]
pub fn gguf_options(weights: &str, mmproj: &str) -> qwglm_engine::pipeline::LoadOptions {
    qwglm_engine::pipeline::LoadOptions {
        weights: Some(weights.into()),
        mmproj: Some(mmproj.into()),
        ..Default::default()
    }
}
