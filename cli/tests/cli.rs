//! The `qwglm` command as a user runs it: generate against the reference fixtures (from a
//! folder and over HTTP from `qwglm serve`), and clear one-line errors for bad input.

use std::path::PathBuf;
use std::process::{Command, Output};

fn qwglm() -> Command {
    Command::new(env!("CARGO_BIN_EXE_qwglm"))
}

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures")
}

mod common;
use common::serve;

#[path = "../../tests/support/reference.rs"]
mod support;
use support::{reference, Case};

fn generate_json(model: &str, c: &Case, max_new: usize) -> Output {
    let mut cmd = qwglm();
    cmd.args(["generate", "--model", model, "--prompt", &c.prompt, "--temperature", "0", "--ignore-eos", "--json"]);
    cmd.args(["--max-new-tokens", &max_new.to_string()]);
    if let Some(s) = &c.system {
        cmd.args(["--system", s]);
    }
    cmd.output().unwrap()
}

/// Parses `--json` output and checks it against the reference case.
fn check_json(out: &Output, c: &Case, label: &str) {
    assert!(out.status.success(), "{label}: {}", String::from_utf8_lossy(&out.stderr));
    let lines: Vec<serde_json::Value> =
        String::from_utf8(out.stdout.clone()).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let (done, tokens) = lines.split_last().unwrap();
    assert_eq!(done["done"], true);
    assert_eq!(done["prompt_tokens"], c.prompt_ids.len());
    assert_eq!(done["generated_tokens"], c.greedy_ids.len());
    assert_eq!(done["stop"], "length");
    assert!(done["prefill_ms"].as_f64().unwrap() > 0.0 && done["decode_tokens_per_s"].as_f64().unwrap() > 0.0);
    let ids: Vec<u32> = tokens.iter().map(|t| t["id"].as_u64().unwrap() as u32).collect();
    assert_eq!(ids, c.greedy_ids, "{label}: greedy ids");
    for (step, (t, want)) in tokens.iter().zip(&c.top5).enumerate() {
        let top: Vec<(u32, f32)> = serde_json::from_value(t["top"].clone()).unwrap();
        assert_eq!(top.len(), 5);
        for ((gi, gl), (wi, wl)) in top.iter().zip(want) {
            assert!((gl - wl).abs() <= 1e-3 * wl.abs().max(1.0), "{label} step {step}: {gi} {gl} vs {wi} {wl}");
        }
    }
}

/// `--image` with the picture already on the family's resize grid (so our resampler is not
/// involved) gives transformers' greedy ids and logits.
#[test]
fn generate_with_an_image_matches_the_reference() {
    for family in ["qwen2_vl", "qwen2_5_vl", "qwen3_vl"] {
        let r = reference(family);
        let ic = r.image_cases.iter().find(|c| c.name == "exact").unwrap();
        let c = Case {
            system: None,
            prompt: ic.prompt.clone(),
            prompt_ids: ic.prompt_ids.clone(),
            greedy_ids: ic.greedy_ids.clone(),
            greedy_text: ic.greedy_text.clone(),
            top5: ic.top5.clone(),
        };
        let dir = fixtures().join(family);
        let mut cmd = qwglm();
        cmd.args(["generate", "--model", dir.to_str().unwrap(), "--prompt", &c.prompt, "--temperature", "0"]);
        cmd.args(["--ignore-eos", "--json", "--max-new-tokens", &r.max_new_tokens.to_string(), "--image"]);
        cmd.arg(fixtures().join("images").join(&ic.images[0]));
        check_json(&cmd.output().unwrap(), &c, &format!("{family} --image"));
    }
}

#[test]
fn generate_matches_the_reference_for_every_family() {
    for family in ["qwen2_vl", "qwen2_5_vl", "qwen3_vl"] {
        let r = reference(family);
        let dir = fixtures().join(family);
        for (i, c) in r.cases.iter().enumerate() {
            let out = generate_json(dir.to_str().unwrap(), c, r.max_new_tokens);
            check_json(&out, c, &format!("{family} case {i}"));
        }
    }
}

#[test]
fn generate_over_http_from_qwglm_serve() {
    let (_server, port) = serve(&fixtures(), &fixtures());
    let r = reference("qwen3_vl");
    let url = format!("http://127.0.0.1:{port}/models/qwen3_vl/resolve/main");
    check_json(&generate_json(&url, &r.cases[0], r.max_new_tokens), &r.cases[0], "http");
    // The GGUF twin over HTTP: header read in prefixes sized by a HEAD request.
    let mut cmd = qwglm();
    cmd.args(["generate", "--model", &url, "--weights", "model-f32.gguf", "--prompt", &r.cases[0].prompt]);
    cmd.args(["--temperature", "0", "--ignore-eos", "--json", "--max-new-tokens", &r.max_new_tokens.to_string()]);
    check_json(&cmd.output().unwrap(), &r.cases[0], "gguf over http");
    let missing = format!("http://127.0.0.1:{port}/models/nothing/resolve/main");
    let out = generate_json(&missing, &r.cases[0], 2);
    assert_one_line_error(&out, "not found");
}

fn assert_one_line_error(out: &Output, needle: &str) {
    assert!(!out.status.success(), "should fail");
    let err = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = err.lines().filter(|l| !l.contains("XDG_RUNTIME_DIR")).collect();
    assert_eq!(lines.len(), 1, "one line: {err}");
    assert!(lines[0].starts_with("error: ") && lines[0].contains(needle), "{needle:?} in {err}");
}

/// A copy of a fixture folder with one file replaced.
fn broken_copy(family: &str, file: &str, edit: impl FnOnce(Vec<u8>) -> Vec<u8>) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("qwglm-broken-{family}-{file}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    for e in std::fs::read_dir(fixtures().join(family)).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), dir.join(e.file_name())).unwrap();
    }
    let bytes = std::fs::read(dir.join(file)).unwrap();
    std::fs::write(dir.join(file), edit(bytes)).unwrap();
    dir
}

#[test]
fn bad_input_is_one_clear_line() {
    let c = &reference("qwen2_vl").cases[0];
    assert_one_line_error(&generate_json("/nonexistent/model", c, 2), "no such folder");

    let arch = broken_copy("qwen2_vl", "config.json", |b| {
        String::from_utf8(b).unwrap().replace("\"qwen2_vl\"", "\"llama\"").into_bytes()
    });
    assert_one_line_error(&generate_json(arch.to_str().unwrap(), c, 2), "unsupported architecture");

    let malformed = broken_copy("qwen2_vl", "config.json", |b| b[..b.len() / 2].to_vec());
    assert_one_line_error(&generate_json(malformed.to_str().unwrap(), c, 2), "config.json");

    let truncated = broken_copy("qwen2_vl", "model.safetensors", |b| b[..b.len() - 1000].to_vec());
    assert_one_line_error(&generate_json(truncated.to_str().unwrap(), c, 2), "truncated");

    let garbage = broken_copy("qwen2_vl", "model.safetensors", |_| vec![0xff; 64]);
    assert_one_line_error(&generate_json(garbage.to_str().unwrap(), c, 2), "safetensors");

    let cut_gguf = broken_copy("qwen2_vl", "model-mixed.gguf", |b| b[..b.len() - 100].to_vec());
    let out = qwglm()
        .args(["generate", "--model", cut_gguf.to_str().unwrap(), "--weights", "model-mixed.gguf", "--prompt", "x"])
        .output()
        .unwrap();
    assert_one_line_error(&out, "truncated");

    let out = qwglm()
        .args([
            "generate",
            "--model",
            fixtures().join("qwen2_vl").to_str().unwrap(),
            "--prompt",
            "x",
            "--image",
            "/nope.png",
        ])
        .output()
        .unwrap();
    assert_one_line_error(&out, "/nope.png");

    let not_an_image = fixtures().join("qwen2_vl").join("config.json");
    let out = qwglm()
        .args(["generate", "--model", fixtures().join("qwen2_vl").to_str().unwrap(), "--prompt", "x", "--image"])
        .arg(&not_an_image)
        .output()
        .unwrap();
    assert_one_line_error(&out, "cannot decode the image");
    for d in [arch, malformed, truncated, garbage, cut_gguf] {
        let _ = std::fs::remove_dir_all(d);
    }
    let bench = |shape: &str| qwglm().args(["bench", "--synthetic", shape]).output().unwrap();
    assert_one_line_error(&bench("whisper-huge"), "unknown speech shape \"whisper-huge\"");
    assert_one_line_error(&bench("llama-7b"), "unknown model shape");
}

/// The crate rules of the design: the engine knows nothing of the app, vision and audio have
/// no GPU dependency, and only app and cli are front ends.
#[test]
fn crate_boundaries_hold() {
    let out = Command::new(env!("CARGO"))
        .args(["metadata", "--format-version", "1", "--manifest-path"])
        .arg(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../Cargo.toml"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let resolve = &meta["resolve"]["nodes"];
    let packages = meta["packages"].as_array().unwrap();
    let name_of =
        |id: &str| packages.iter().find(|p| p["id"] == id).map(|p| p["name"].as_str().unwrap().to_string()).unwrap();
    let id_of = |name: &str| packages.iter().find(|p| p["name"] == name).map(|p| p["id"].as_str().unwrap().to_string());
    // All transitive dependencies of a package.
    let closure = |name: &str| {
        let mut seen = std::collections::BTreeSet::new();
        let mut stack = vec![id_of(name).unwrap_or_else(|| panic!("{name} in workspace"))];
        while let Some(id) = stack.pop() {
            if !seen.insert(id.clone()) {
                continue;
            }
            if let Some(node) = resolve.as_array().unwrap().iter().find(|n| n["id"] == id.as_str()) {
                for d in node["dependencies"].as_array().unwrap() {
                    stack.push(d.as_str().unwrap().to_string());
                }
            }
        }
        seen.into_iter().map(|id| name_of(&id)).collect::<std::collections::BTreeSet<_>>()
    };
    let engine = closure("qwglm-engine");
    assert!(!engine.contains("qwglm-app") && !engine.contains("leptos"), "engine must not depend on the app");
    for pure in ["qwglm-vision", "qwglm-audio"] {
        let deps = closure(pure);
        assert!(
            !deps.contains("wgpu") && !deps.contains("web-sys"),
            "{pure} must not use the GPU or the page: {deps:?}"
        );
    }
    for lib in ["qwglm-engine", "qwglm-vision", "qwglm-audio"] {
        assert!(!closure(lib).contains("qwglm-cli"), "{lib} must not depend on a front end");
    }
}
