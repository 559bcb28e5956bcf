//! Whisper against transformers on the tiny random checkpoints of
//! `tests/fixtures/speech/make_whisper_fixtures.py`: log-mel features within 1e-4, encoder
//! output within 1e-4, decoder prompt and greedy ids exact, every step's five highest logits
//! within 1e-3 (relative above 1), for a multilingual model (language given and detected,
//! translate, timestamps) and an English-only one.

#![cfg(not(target_arch = "wasm32"))]

use std::path::PathBuf;

#[path = "../../tests/support/reference.rs"]
#[allow(dead_code)]
mod support;
use support::assert_top5;

use qwglm_engine::load::DirSource;
use qwglm_engine::speech::{Recognizer, SpeechLoadOptions, Task, TranscribeOptions};
use qwglm_engine::Gpu;

#[derive(serde::Deserialize)]
struct Reference {
    cases: Vec<Case>,
}

#[derive(serde::Deserialize)]
struct Case {
    clip: String,
    language: Option<String>,
    task: Option<String>,
    #[serde(default)]
    timestamps: bool,
    mel_frames: usize,
    mel: Vec<f32>,
    mel_pad: f32,
    encoder_rows: Vec<usize>,
    encoder: Vec<f32>,
    prompt_ids: Vec<u32>,
    generated_ids: Vec<u32>,
    first_pass_ids: Vec<u32>,
    top5: Vec<Vec<(u32, f32)>>,
}

fn speech(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/speech").join(path)
}

fn clip(name: &str) -> Vec<f32> {
    let f = std::fs::File::open(speech(&format!("clips/{name}"))).expect("clip");
    let pcm = qwglm_audio::read_wav(std::io::BufReader::new(f)).expect("wav");
    assert_eq!(pcm.sample_rate_hz, 16_000);
    pcm.samples
}

fn close(got: &[f32], want: &[f32], tol: f32, label: &str) {
    assert_eq!(got.len(), want.len(), "{label}: length");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!((g - w).abs() <= tol, "{label}: index {i}: got {g}, want {w}");
    }
}

async fn check(model: &str) {
    let gpu = Gpu::new().await.expect("GPU (lavapipe)");
    let src = DirSource(speech(model));
    let rec = Recognizer::load(gpu.clone(), &src, SpeechLoadOptions::default(), &mut |_| {}).await.expect("load");
    let reference: Reference =
        serde_json::from_slice(&std::fs::read(speech(&format!("{model}/reference.json"))).unwrap()).unwrap();
    for case in &reference.cases {
        let label = format!("{model} {} {:?} {:?} ts={}", case.clip, case.language, case.task, case.timestamps);
        let audio = clip(&case.clip);
        let mel = qwglm_audio::log_mel(&audio, &rec.mel);
        if case.mel_frames > 0 {
            let frames = rec.mel.frames();
            let bins = rec.mel.feature_size;
            let got: Vec<f32> =
                (0..bins).flat_map(|b| mel[b * frames..b * frames + case.mel_frames].to_vec()).collect();
            close(&got, &case.mel, 1e-4, &format!("{label}: mel"));
            let rest: Vec<f32> =
                (0..bins).flat_map(|b| mel[b * frames + case.mel_frames..(b + 1) * frames].to_vec()).collect();
            close(&rest, &vec![case.mel_pad; rest.len()], 1e-4, &format!("{label}: padded mel"));
        }
        let (enc, _) = rec.model.encode(&gpu, &mel).expect("encode");
        let d = rec.model.cfg.d_model;
        let mut got = Vec::new();
        for &r in &case.encoder_rows {
            got.extend(gpu.read_f32(&enc, (r * d) as u64, d).await.unwrap());
        }
        close(&got, &case.encoder, 1e-4, &format!("{label}: encoder output"));

        let opts = TranscribeOptions {
            language: case.language.clone(),
            task: if case.task.as_deref() == Some("translate") { Task::Translate } else { Task::Transcribe },
            timestamps: case.timestamps,
            no_speech_threshold: None,
            ..Default::default()
        };
        let t = rec.transcribe(&audio, &opts, &mut |_| {}).await.expect("transcribe");
        let w = &t.windows[0];
        assert_eq!(w.prompt, case.prompt_ids, "{label}: prompt");
        assert_eq!(w.generated, case.first_pass_ids, "{label}: greedy ids of the first pass");
        assert_top5(&label, &w.top5, &case.top5, 1e-3);
        assert_eq!(t.tokens, case.generated_ids, "{label}: the ids of every segment");
        if case.clip == "silence.wav" {
            // transformers transcribes silence; with the no-speech gate on (the default) it
            // gives nothing.
            assert!(!t.text.is_empty(), "{label}: the random model says something");
            let gated = rec.transcribe(&audio, &TranscribeOptions::default(), &mut |_| {}).await.expect("transcribe");
            assert_eq!((gated.text.as_str(), gated.segments.len()), ("", 0), "{label}: silence gives no transcript");
        }
    }
}

#[test]
fn whisper_multilingual_matches_transformers() {
    pollster::block_on(check("whisper_tiny"));
}

#[test]
fn whisper_english_only_matches_transformers() {
    pollster::block_on(check("whisper_tiny_en"));
}
