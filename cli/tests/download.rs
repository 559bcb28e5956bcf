//! Downloads from a Hub-layout server (`qwglm serve`, with the Hub's tree and revision API and
//! HTTP Range) into a local store, as the browser does into its origin-private file system:
//! a 256 MiB weight file interrupted and resumed, a corrupted byte, a file cut short at the
//! source, and loading the model from the store with the server gone.

use std::path::{Path, PathBuf};
use std::rc::Rc;

use qwglm_engine::chat::{Message, Role};
use qwglm_engine::generate::SamplingParams;
use qwglm_engine::hub::{self, CachedSource, DirStore, NativeHttp, Repo, Store};
use qwglm_engine::pipeline::{ChatModel, LoadOptions};
use qwglm_engine::Gpu;

mod common;
use common::serve;

#[path = "../../tests/support/reference.rs"]
mod support;
use support::reference;

fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("qwglm-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// The Qwen3-VL fixture with its safetensors rewritten to carry an extra 256 MiB tensor of
/// pseudo-random f16 values (the loader skips it; the download does not).
fn big_repo(root: &Path) -> u64 {
    let src = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/qwen3_vl");
    let dst = root.join("big");
    std::fs::create_dir_all(&dst).unwrap();
    for f in ["config.json", "tokenizer.json", "tokenizer_config.json", "chat_template.json", "generation_config.json"]
    {
        std::fs::copy(src.join(f), dst.join(f)).unwrap();
    }
    let file = std::fs::read(src.join("model.safetensors")).unwrap();
    let n = u64::from_le_bytes(file[..8].try_into().unwrap()) as usize;
    let mut header: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(&file[8..8 + n]).unwrap();
    let data = &file[8 + n..];
    let pad = 256usize << 20;
    header.insert(
        "zz.padding".into(),
        serde_json::json!({"dtype": "F16", "shape": [pad / 2], "data_offsets": [data.len(), data.len() + pad]}),
    );
    let h = serde_json::to_vec(&header).unwrap();
    let mut out = Vec::with_capacity(8 + h.len() + data.len() + pad);
    out.extend((h.len() as u64).to_le_bytes());
    out.extend(&h);
    out.extend(data);
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    out.extend((0..pad / 8).flat_map(|_| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        // Finite f16 values: clear each half's top exponent bit.
        (x & 0xBFFF_BFFF_BFFF_BFFF).to_le_bytes()
    }));
    std::fs::write(dst.join("model.safetensors"), &out).unwrap();
    out.len() as u64
}

fn model_files(m: &hub::Manifest) -> Vec<String> {
    m.files.iter().map(|f| f.path.clone()).collect()
}

/// Greedy reply to the first reference case from the stored model.
async fn answer<St: Store>(store: &St, m: hub::Manifest) -> Vec<u32> {
    let gpu: Rc<Gpu> = Gpu::new().await.expect("a GPU adapter (lavapipe)");
    let src = CachedSource { store, manifest: m };
    let model = ChatModel::load(gpu, &src, LoadOptions::default(), &mut |_| {}).await.expect("loads from the store");
    let r = reference("qwen3_vl");
    let c = &r.cases[0];
    let prompt = model.prompt(&[Message::text(Role::User, &c.prompt)], &[]).unwrap();
    let mut session = model.new_session().unwrap();
    let params = SamplingParams { max_new_tokens: r.max_new_tokens, ignore_eos: true, ..Default::default() };
    let mut ids = Vec::new();
    model
        .generate(&mut session, &prompt, &params, &mut |ev| {
            if ev.id != u32::MAX {
                ids.push(ev.id);
            }
            true
        })
        .await
        .unwrap();
    assert_eq!(ids, c.greedy_ids);
    ids
}

#[test]
fn downloads_resume_verify_and_load_offline() {
    let models = temp_dir("hub");
    let size = big_repo(&models);
    let store = DirStore(temp_dir("store"));
    let (server, port) = serve(&models, &models);
    let repo =
        Repo { endpoint: format!("http://127.0.0.1:{port}/models"), repo: "big".into(), revision: "main".into() };
    pollster::block_on(async {
        let m = hub::manifest(&store, &NativeHttp, &repo).await.unwrap();
        let weights = m.file("model.safetensors").unwrap();
        assert_eq!(weights.size, size);
        assert_eq!(weights.sha256.as_ref().map(String::len), Some(64), "the listing gives the SHA-256");
        assert_ne!(m.commit, "main", "pinned to a commit");

        // Interrupted a quarter of the way in: the part stays, nothing is marked complete.
        let files = model_files(&m);
        let stop_at = size / 4;
        let err = hub::download(&store, &NativeHttp, &m, &files, &mut |p| p.fetched < stop_at).await.unwrap_err();
        assert!(err.to_string().contains("stopped"), "{err}");
        let part = store.len(&format!("{}/model.safetensors", repo.key())).await.unwrap().unwrap();
        assert!(part >= stop_at && part < size, "partial file of {part} bytes");
        assert!(!hub::is_complete(&store, &m, "model.safetensors").await.unwrap());

        // Resumed with a Range request: only the rest comes over the network.
        let mut fetched = 0;
        hub::download(&store, &NativeHttp, &m, &files, &mut |p| {
            fetched = p.fetched;
            true
        })
        .await
        .unwrap();
        let small: u64 = m.files.iter().filter(|f| f.path != "model.safetensors").map(|f| f.size).sum();
        assert!(fetched <= size - part + small, "fetched {fetched} of {size} after {part} were stored");
        assert!(hub::is_complete(&store, &m, "model.safetensors").await.unwrap());
        let listed = hub::stored_models(&store).await.unwrap();
        assert_eq!(listed.len(), 1);
        assert!(listed[0].bytes >= size && listed[0].complete_files.len() == m.files.len());

        // A corrupted byte in a stored part: the hash check deletes the file; a retry heals it.
        let key = repo.key();
        let path = store.0.join(&key).join("model.safetensors");
        std::fs::remove_file(store.0.join(&key).join("model.safetensors.complete")).unwrap();
        let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        f.set_len(size / 2).unwrap();
        drop(f);
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[12345] ^= 0x40;
        std::fs::write(&path, bytes).unwrap();
        let err = hub::download(&store, &NativeHttp, &m, &files, &mut |_| true).await.unwrap_err();
        assert!(err.to_string().contains("SHA-256"), "{err}");
        assert_eq!(store.len(&format!("{key}/model.safetensors")).await.unwrap(), None, "the bad file is gone");
        hub::download(&store, &NativeHttp, &m, &files, &mut |_| true).await.unwrap();
        assert!(hub::is_complete(&store, &m, "model.safetensors").await.unwrap());

        // A file cut short at the source: an error that says so, and nothing marked complete.
        let cut = DirStore(temp_dir("store-cut"));
        let m2 = hub::manifest(&cut, &NativeHttp, &repo).await.unwrap();
        let served = models.join("big/model.safetensors");
        let f = std::fs::OpenOptions::new().write(true).open(&served).unwrap();
        f.set_len(size - 1000).unwrap();
        drop(f);
        let err = hub::download(&cut, &NativeHttp, &m2, &files, &mut |_| true).await.unwrap_err();
        assert!(err.to_string().contains("ended at"), "{err}");
        assert!(!hub::is_complete(&cut, &m2, "model.safetensors").await.unwrap());
    });

    // The server gone: the stored manifest and files are enough.
    drop(server);
    pollster::block_on(async {
        let m = hub::manifest(&store, &NativeHttp, &repo).await.expect("the stored manifest, offline");
        answer(&store, m).await;
    });
    let _ = std::fs::remove_dir_all(&models);
    let _ = std::fs::remove_dir_all(&store.0);
}
