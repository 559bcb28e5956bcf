//! The reference outputs of `tests/fixtures/make_fixtures.py`, shared by the engine's parity
//! tests and the CLI's tests (included with `#[path]`).

use std::path::PathBuf;

#[derive(serde::Deserialize)]
pub struct Reference {
    pub max_new_tokens: usize,
    pub cases: Vec<Case>,
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
