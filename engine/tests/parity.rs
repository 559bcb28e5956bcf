//! Model parity: the engine against the transformers reference outputs committed under
//! `tests/fixtures/<family>/reference.json` (made by `tests/fixtures/make_fixtures.py`).
//! Prompt ids and greedy ids must match exactly; the five highest logits of every step within
//! 1e-3 (relative above 1).

use std::path::PathBuf;
use std::rc::Rc;

use qwglm_engine::chat::{Message, Role};
use qwglm_engine::generate::SamplingParams;
use qwglm_engine::load::{ByteSource, DirSource};
use qwglm_engine::pipeline::{ChatModel, LoadOptions};
use qwglm_engine::{Gpu, LoadError};

const LOGIT_TOL: f32 = 1e-3;

#[derive(serde::Deserialize)]
struct Reference {
    max_new_tokens: usize,
    cases: Vec<Case>,
}

#[derive(serde::Deserialize)]
struct Case {
    system: Option<String>,
    prompt: String,
    prompt_ids: Vec<u32>,
    greedy_ids: Vec<u32>,
    greedy_text: String,
    top5: Vec<Vec<(u32, f32)>>,
}

fn fixture(family: &str) -> PathBuf {
    PathBuf::from(format!("{}/../tests/fixtures/{family}", env!("CARGO_MANIFEST_DIR")))
}

/// The fixture folder with `config.json` replaced by another config file.
struct RenamedConfig(DirSource, &'static str);

impl ByteSource for RenamedConfig {
    fn describe(&self, file: &str) -> String {
        self.0.describe(file)
    }
    async fn read(&self, file: &str) -> Result<Vec<u8>, LoadError> {
        self.0.read(if file == "config.json" { self.1 } else { file }).await
    }
    async fn read_range(&self, file: &str, start: u64, len: u64) -> Result<Vec<u8>, LoadError> {
        self.0.read_range(file, start, len).await
    }
    async fn size(&self, file: &str) -> Result<Option<u64>, LoadError> {
        self.0.size(file).await
    }
}

fn messages(c: &Case) -> Vec<Message> {
    let mut m = Vec::new();
    if let Some(s) = &c.system {
        m.push(Message::text(Role::System, s));
    }
    m.push(Message::text(Role::User, &c.prompt));
    m
}

fn check_family<S: ByteSource>(family: &str, src: S, options: LoadOptions) {
    pollster::block_on(async {
        let gpu: Rc<Gpu> = Gpu::new().await.expect("a GPU adapter (lavapipe)");
        let model = ChatModel::load(gpu, &src, options, &mut |_| {}).await.expect("model loads");
        let r: Reference =
            serde_json::from_slice(&std::fs::read(fixture(family).join("reference.json")).unwrap()).unwrap();
        let params = SamplingParams { max_new_tokens: r.max_new_tokens, ignore_eos: true, ..Default::default() };
        for (ci, c) in r.cases.iter().enumerate() {
            let (_, ids) = model.prompt(&messages(c)).unwrap();
            assert_eq!(ids, c.prompt_ids, "{family} case {ci}: prompt ids");
            let mut session = model.new_session().unwrap();
            let mut got_ids = Vec::new();
            let mut tops = Vec::new();
            let mut streamed = String::new();
            let summary = model
                .generate(&mut session, &ids, &params, &mut |ev| {
                    if ev.id != u32::MAX {
                        got_ids.push(ev.id);
                        tops.push(ev.top.clone());
                    }
                    streamed.push_str(&ev.text);
                    true
                })
                .await
                .unwrap();
            for (step, (got, want)) in tops.iter().zip(&c.top5).enumerate() {
                for (k, ((gi, gl), (wi, wl))) in got.iter().zip(want).enumerate() {
                    let ok = (gl - wl).abs() <= LOGIT_TOL * wl.abs().max(1.0);
                    assert!(ok, "{family} case {ci} step {step} top{k}: logit of {gi} is {gl}, reference {wi} {wl}");
                }
                // Ids may only differ between near-equal logits.
                let got_set: Vec<u32> = got.iter().map(|t| t.0).collect();
                let want_set: Vec<u32> = want.iter().map(|t| t.0).collect();
                assert_eq!(got_set[..4], want_set[..4], "{family} case {ci} step {step}: top ids");
            }
            assert_eq!(got_ids, c.greedy_ids, "{family} case {ci}: greedy ids");
            assert_eq!(streamed, c.greedy_text, "{family} case {ci}: streamed text");
            assert_eq!(summary.text, c.greedy_text);
            assert_eq!(summary.generated_tokens, c.greedy_ids.len());
        }
    });
}

#[test]
fn qwen2_vl_matches_transformers() {
    check_family("qwen2_vl", DirSource(fixture("qwen2_vl")), LoadOptions::default());
}

#[test]
fn qwen2_5_vl_matches_transformers() {
    check_family("qwen2_5_vl", DirSource(fixture("qwen2_5_vl")), LoadOptions::default());
}

#[test]
fn qwen3_vl_matches_transformers() {
    check_family("qwen3_vl", DirSource(fixture("qwen3_vl")), LoadOptions::default());
}

/// The nested layout transformers 5 writes loads to the same outputs.
#[test]
fn transformers5_config_layout_matches() {
    for family in ["qwen2_vl", "qwen3_vl"] {
        check_family(
            family,
            RenamedConfig(DirSource(fixture(family)), "config.transformers5.json"),
            LoadOptions::default(),
        );
    }
}

/// Prefill in chunks of 5 tokens (so attention spans chunks) gives the same outputs.
#[test]
fn chunked_prefill_matches() {
    check_family("qwen3_vl", DirSource(fixture("qwen3_vl")), LoadOptions { prefill_chunk: 5, ..Default::default() });
}

/// A follow-up turn reuses the cached prefix and gives what a fresh session gives.
#[test]
fn follow_up_turn_reuses_the_cache() {
    pollster::block_on(async {
        let gpu = Gpu::new().await.unwrap();
        let src = DirSource(fixture("qwen3_vl"));
        let model = ChatModel::load(gpu, &src, LoadOptions::default(), &mut |_| {}).await.unwrap();
        let params = SamplingParams { max_new_tokens: 6, ignore_eos: true, ..Default::default() };
        let mut turn = vec![Message::text(Role::User, "Hello! How are you today?")];
        let mut session = model.new_session().unwrap();
        let (_, ids) = model.prompt(&turn).unwrap();
        let first = model.generate(&mut session, &ids, &params, &mut |_| true).await.unwrap();
        turn.push(Message::text(Role::Assistant, &first.text));
        turn.push(Message::text(Role::User, "Describe the cat."));
        let (_, ids2) = model.prompt(&turn).unwrap();
        let mut reused = Vec::new();
        model
            .generate(&mut session, &ids2, &params, &mut |e| {
                reused.push(e.id);
                true
            })
            .await
            .unwrap();
        let mut fresh_session = model.new_session().unwrap();
        let mut fresh = Vec::new();
        model
            .generate(&mut fresh_session, &ids2, &params, &mut |e| {
                fresh.push(e.id);
                true
            })
            .await
            .unwrap();
        assert_eq!(reused, fresh);
    });
}

/// A prompt longer than the context is an error, not a crash, and the session stays usable.
#[test]
fn context_overflow_is_an_error() {
    pollster::block_on(async {
        let gpu = Gpu::new().await.unwrap();
        let src = DirSource(fixture("qwen2_vl"));
        let model = ChatModel::load(gpu, &src, LoadOptions { max_context: 16, ..Default::default() }, &mut |_| {})
            .await
            .unwrap();
        let mut session = model.new_session().unwrap();
        let long: Vec<u32> = (0..40).collect();
        let err = model.generate(&mut session, &long, &SamplingParams::default(), &mut |_| true).await.unwrap_err();
        assert!(err.to_string().contains("context"), "{err}");
        let params = SamplingParams { max_new_tokens: 50, ignore_eos: true, ..Default::default() };
        let s = model.generate(&mut session, &[1, 2, 3], &params, &mut |_| true).await.unwrap();
        assert_eq!(s.generated_tokens, 16 - 3, "generation stops at the context end");
    });
}
