//! Vision parity: image prompts through the engine against transformers' outputs in
//! `tests/fixtures/<family>/reference.json` (`image_cases`, made by
//! `tests/fixtures/make_fixtures.py`). The engine gets the pixels PIL resized for the
//! processor (`images/<name>.<patch>.resized.png`), so only the model is compared here; the
//! resampling difference is measured by the `vision` crate's tests and by
//! `own_preprocessing_keeps_the_answer` below.
//!
//! Checked per family: the expanded prompt ids, greedy ids exactly and every step's top-5
//! logits within 1e-3; the merger (and DeepStack) output of the first image; a text turn after
//! an image turn in the same session.

use std::rc::Rc;

use qwglm_engine::chat::{Message, Part, Role};
use qwglm_engine::generate::SamplingParams;
use qwglm_engine::load::DirSource;
use qwglm_engine::models::qwen_vision::VisionInput;
use qwglm_engine::pipeline::{ChatModel, LoadOptions, Session};
use qwglm_engine::prompt::{ImageInput, Prompt};
use qwglm_engine::Gpu;

#[path = "../../tests/support/reference.rs"]
mod support;
use support::{assert_top5, fixture, gguf_options, reference, ImageCase};

const LOGIT_TOL: f32 = 1e-3;

fn image_path(name: &str) -> std::path::PathBuf {
    fixture("images").join(name)
}

/// The PIL-resized pixels of `name` for a model with patch `patch`, as patches.
fn resized_input(model: &ChatModel, name: &str) -> ImageInput {
    let stem = name.rsplit_once('.').map_or(name, |(s, _)| s);
    let file = image_path(&format!("{stem}.{}.resized.png", model.preprocess.patch_size));
    let bytes = std::fs::read(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    let img = qwglm_vision::decode(&bytes, qwglm_vision::DecodeLimits { max_pixels: 1 << 24 }).unwrap();
    let p = qwglm_vision::patchify(&img, &model.preprocess).unwrap();
    ImageInput::new(p.data, p.grid_thw)
}

fn user_turn(images: usize, text: &str) -> Message {
    let mut content: Vec<Part> = (0..images).map(|_| Part::Image {}).collect();
    content.push(Part::Text { text: text.into() });
    Message { role: Role::User, content }
}

async fn load(family: &str, options: LoadOptions) -> ChatModel {
    let gpu: Rc<Gpu> = Gpu::new().await.expect("a GPU adapter (lavapipe)");
    ChatModel::load(gpu, &DirSource(fixture(family)), options, &mut |_| {}).await.expect("model loads")
}

/// Greedy generation of `n` tokens: the ids and each step's top five.
async fn greedy(
    model: &ChatModel,
    session: &mut Session,
    prompt: &Prompt,
    n: usize,
) -> (Vec<u32>, Vec<Vec<(u32, f32)>>, String) {
    let params = SamplingParams { max_new_tokens: n, ignore_eos: true, ..Default::default() };
    let (mut ids, mut tops) = (Vec::new(), Vec::new());
    let summary = model
        .generate(session, prompt, &params, &mut |ev| {
            if ev.id != u32::MAX {
                ids.push(ev.id);
                tops.push(ev.top.clone());
            }
            true
        })
        .await
        .unwrap();
    (ids, tops, summary.text)
}

/// The merger output of the exact-grid image against transformers' `get_image_features`.
async fn check_merger(family: &str, model: &ChatModel, case: &ImageCase) {
    let vision = model.vision.as_ref().expect("the fixture has a vision tower");
    let input = resized_input(model, &case.images[0]);
    assert_eq!(input.grid_thw, case.grid_thw[0], "{family}: grid");
    let grids = [input.grid_thw];
    let out = vision.forward(&model_gpu(model), &VisionInput { patches: &input.patches, grids: &grids }).unwrap();
    let hidden = vision.cfg.out_hidden_size;
    let check = |label: &str, got: Vec<f32>, want: &[f32]| {
        // Rows come in `unit_of_row` order (Qwen2.5-VL's windows); put them in image order.
        let mut ordered = vec![0f32; got.len()];
        for (r, &u) in out.unit_of_row.iter().enumerate() {
            ordered[u as usize * hidden..(u as usize + 1) * hidden].copy_from_slice(&got[r * hidden..(r + 1) * hidden]);
        }
        assert_eq!(ordered.len(), want.len(), "{family} {label}: size");
        let worst = ordered.iter().zip(want).map(|(a, b)| (a - b).abs() / b.abs().max(1.0)).fold(0f32, f32::max);
        assert!(worst < 1e-4, "{family} {label}: relative error {worst}");
    };
    let gpu = model_gpu(model);
    check("merger", gpu.read_f32(&out.embeds, 0, out.tokens * hidden).await.unwrap(), &case.merger_output);
    assert_eq!(out.deepstack.len(), case.deepstack_output.len(), "{family}: DeepStack features");
    for (k, (buf, want)) in out.deepstack.iter().zip(&case.deepstack_output).enumerate() {
        check(&format!("deepstack {k}"), gpu.read_f32(buf, 0, out.tokens * hidden).await.unwrap(), want);
    }
}

fn model_gpu(model: &ChatModel) -> Rc<Gpu> {
    model.gpu().clone()
}

fn check_family(family: &str, options: LoadOptions) {
    check_dir(family, family, options)
}

/// The image cases of `tests/fixtures/<family>/reference.json` against the model in
/// `tests/fixtures/<dir>`.
fn check_dir(family: &str, dir: &str, options: LoadOptions) {
    pollster::block_on(async {
        let model = load(dir, options).await;
        let r = reference(family);
        assert_eq!(r.image_cases.len(), 3, "{family}: image cases");
        for case in &r.image_cases {
            let label = format!("{family} {}", case.name);
            let images: Vec<ImageInput> = case.images.iter().map(|n| resized_input(&model, n)).collect();
            let grids: Vec<[usize; 3]> = images.iter().map(|i| i.grid_thw).collect();
            assert_eq!(grids, case.grid_thw, "{label}: grids");
            let turn = vec![user_turn(images.len(), &case.prompt)];
            let prompt = model.prompt(&turn, &images).unwrap();
            assert_eq!(prompt.ids, case.prompt_ids, "{label}: prompt ids");
            let mut session = model.new_session().unwrap();
            let (ids, tops, text) = greedy(&model, &mut session, &prompt, r.max_new_tokens).await;
            assert_top5(&label, &tops, &case.top5, LOGIT_TOL);
            assert_eq!(ids, case.greedy_ids, "{label}: greedy ids");
            assert_eq!(text, case.greedy_text, "{label}: text");
            if let Some(f) = &case.follow_up {
                check_merger(family, &model, case).await;
                // The next turn of the same conversation: the image stays in the cache.
                let mut turns = turn.clone();
                turns.push(Message::text(Role::Assistant, &text));
                turns.push(user_turn(0, &f.prompt));
                let prompt = model.prompt(&turns, &images).unwrap();
                assert_eq!(prompt.ids, f.prompt_ids, "{label} follow-up: prompt ids");
                let (ids, tops, _) = greedy(&model, &mut session, &prompt, r.max_new_tokens).await;
                assert_top5(&format!("{label} follow-up"), &tops, &f.top5, LOGIT_TOL);
                assert_eq!(ids, f.greedy_ids, "{label} follow-up: greedy ids");
            }
        }
    });
}

#[test]
fn qwen2_vl_images_match_transformers() {
    check_family("qwen2_vl", LoadOptions::default());
}

#[test]
fn qwen2_5_vl_images_match_transformers() {
    check_family("qwen2_5_vl", LoadOptions::default());
}

#[test]
fn qwen3_vl_images_match_transformers() {
    check_family("qwen3_vl", LoadOptions::default());
}

/// Prefill chunks of 7 tokens cut through the image tokens (and the DeepStack rows).
#[test]
fn chunked_prefill_splits_images() {
    check_family("qwen3_vl", LoadOptions { prefill_chunk: 7, ..Default::default() });
}

/// Our own decoding and bicubic resize of the original file (not PIL's pixels) still gives
/// transformers' greedy answer for the image that needs resizing.
#[test]
fn own_preprocessing_keeps_the_answer() {
    pollster::block_on(async {
        for family in ["qwen2_vl", "qwen3_vl"] {
            let model = load(family, LoadOptions::default()).await;
            let r = reference(family);
            let case = r.image_cases.iter().find(|c| c.name == "resized").unwrap();
            let bytes = std::fs::read(image_path(&case.images[0])).unwrap();
            let img = qwglm_vision::decode(&bytes, qwglm_vision::DecodeLimits { max_pixels: 1 << 24 }).unwrap();
            let input = model.prepare_image(&img, None).unwrap();
            let prompt = model.prompt(&[user_turn(1, &case.prompt)], &[input]).unwrap();
            assert_eq!(prompt.ids, case.prompt_ids, "{family}: prompt ids");
            let mut session = model.new_session().unwrap();
            let (ids, tops, _) = greedy(&model, &mut session, &prompt, r.max_new_tokens).await;
            assert_top5(&format!("{family} own preprocessing"), &tops, &case.top5, 0.05);
            assert_eq!(ids, case.greedy_ids, "{family}: greedy ids");
        }
    });
}

/// Images sent to a model without a vision tower, or more images than placeholders, are clear
/// errors.
#[test]
fn image_count_mismatch_is_an_error() {
    pollster::block_on(async {
        let model = load("qwen2_vl", LoadOptions::default()).await;
        let img = resized_input(&model, "scene_150x100.png");
        let err = model.prompt(&[user_turn(1, "Hi")], &[img.clone(), img]).unwrap_err();
        assert!(err.to_string().contains("placeholders"), "{err}");
    });
}

/// A folder with only llama.cpp files (text GGUF + mmproj, all F32, q/k/v and the patch
/// embedding split as llama.cpp splits them) answers the Qwen2.5-VL image cases exactly.
#[test]
fn gguf_only_qwen2_5_vl_images_match_transformers() {
    check_dir("qwen2_5_vl", "qwen2_5_vl_gguf", gguf_options("model-f32.gguf", "mmproj-f32.gguf"));
}

/// A Q4_K_M text GGUF with an F16 mmproj against transformers on its dequantized twin.
#[test]
fn q4_k_m_gguf_with_mmproj_images_match_the_twin() {
    check_dir(
        "qwen3_vl_q4_k_m",
        "qwen3_vl_q4_k_m",
        gguf_options("Qwen3-VL-Tiny-Q4_K_M.gguf", "mmproj-Qwen3-VL-Tiny-F16.gguf"),
    );
}
