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
use qwglm_engine::prompt::Prompt;
use qwglm_engine::{Gpu, LoadError};

const LOGIT_TOL: f32 = 1e-3;

#[path = "../../tests/support/reference.rs"]
mod support;
use support::{assert_top5, fixture, gguf_options, reference, Case};

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
    let gpu: Rc<Gpu> = pollster::block_on(Gpu::new()).expect("a GPU adapter (lavapipe)");
    check_family_on(gpu, family, &src, options)
}

fn check_family_on<S: ByteSource>(gpu: Rc<Gpu>, family: &str, src: &S, options: LoadOptions) {
    pollster::block_on(async {
        let model = ChatModel::load(gpu, src, options, &mut |_| {}).await.expect("model loads");
        let r = reference(family);
        let params = SamplingParams { max_new_tokens: r.max_new_tokens, ignore_eos: true, ..Default::default() };
        for (ci, c) in r.cases.iter().enumerate() {
            let prompt = model.prompt(&messages(c), &[]).unwrap();
            assert_eq!(prompt.ids, c.prompt_ids, "{family} case {ci}: prompt ids");
            let mut session = model.new_session().unwrap();
            let mut got_ids = Vec::new();
            let mut tops = Vec::new();
            let mut streamed = String::new();
            let summary = model
                .generate(&mut session, &prompt, &params, &mut |ev| {
                    if ev.id != u32::MAX {
                        got_ids.push(ev.id);
                        tops.push(ev.top.clone());
                    }
                    streamed.push_str(&ev.text);
                    true
                })
                .await
                .unwrap();
            assert_top5(&format!("{family} case {ci}"), &tops, &c.top5, LOGIT_TOL);
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
        let prompt = model.prompt(&turn, &[]).unwrap();
        let first = model.generate(&mut session, &prompt, &params, &mut |_| true).await.unwrap();
        turn.push(Message::text(Role::Assistant, &first.text));
        turn.push(Message::text(Role::User, "Describe the cat."));
        let prompt2 = model.prompt(&turn, &[]).unwrap();
        let ids_of = async |session: &mut qwglm_engine::pipeline::Session| {
            let mut got = Vec::new();
            model
                .generate(session, &prompt2, &params, &mut |e| {
                    got.push(e.id);
                    true
                })
                .await
                .unwrap();
            got
        };
        let reused = ids_of(&mut session).await;
        let fresh = ids_of(&mut model.new_session().unwrap()).await;
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
        let err = model
            .generate(&mut session, &Prompt::from_ids(&long), &SamplingParams::default(), &mut |_| true)
            .await
            .unwrap_err();
        assert!(err.to_string().contains("context"), "{err}");
        let params = SamplingParams { max_new_tokens: 50, ignore_eos: true, ..Default::default() };
        let s = model.generate(&mut session, &Prompt::from_ids(&[1, 2, 3]), &params, &mut |_| true).await.unwrap();
        assert_eq!(s.generated_tokens, 16 - 3, "generation stops at the context end");
        let none = SamplingParams { max_new_tokens: 0, ..params };
        let s = model
            .generate(&mut session, &Prompt::from_ids(&[1, 2, 3]), &none, &mut |_| panic!("no token asked for"))
            .await
            .unwrap();
        assert_eq!(s.generated_tokens, 0);
    });
}

/// Writes a safetensors file of `(name, dtype, shape, bytes)`.
fn write_safetensors(path: &std::path::Path, tensors: &[(String, &str, Vec<usize>, Vec<u8>)]) {
    let mut header = serde_json::Map::new();
    let mut offset = 0usize;
    for (name, dtype, shape, bytes) in tensors {
        header.insert(
            name.clone(),
            serde_json::json!({"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + bytes.len()]}),
        );
        offset += bytes.len();
    }
    let mut h = serde_json::to_vec(&header).unwrap();
    h.resize(h.len().div_ceil(8) * 8, b' ');
    let mut out = (h.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(&h);
    for (_, _, _, bytes) in tensors {
        out.extend_from_slice(bytes);
    }
    std::fs::write(path, out).unwrap();
}

type Tensors = Vec<(String, &'static str, Vec<usize>, Vec<u8>)>;

/// A file to write: safetensors made of tensors, or raw bytes.
enum FileContent {
    Safetensors(Tensors),
    Raw(Vec<u8>),
}

/// A copy of a fixture folder whose weights are rewritten by `rewrite` into the files it names.
fn rewritten_fixture(
    family: &str,
    tag: &str,
    rewrite: impl Fn(Vec<qwglm_engine::tensor::HostTensor>) -> Vec<(String, FileContent)>,
) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("qwglm-{family}-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    for e in std::fs::read_dir(fixture(family)).unwrap() {
        let e = e.unwrap();
        if e.file_name() != "model.safetensors" {
            std::fs::copy(e.path(), dir.join(e.file_name())).unwrap();
        }
    }
    let src = DirSource(fixture(family));
    let tensors = pollster::block_on(async {
        let index = qwglm_engine::load::TensorIndex::open(&src, None, None).await.unwrap();
        let mut names: Vec<_> = index.entries.keys().cloned().collect();
        names.sort();
        let mut out = Vec::new();
        for n in names {
            out.push(index.read(&src, &n).await.unwrap());
        }
        out
    });
    for (file, content) in rewrite(tensors) {
        match content {
            FileContent::Safetensors(t) => write_safetensors(&dir.join(&file), &t),
            FileContent::Raw(b) => std::fs::write(dir.join(&file), b).unwrap(),
        }
    }
    dir
}

/// The first four greedy ids for the fixtures' first prompt, and the first step's top five.
fn first_step_logits(dir: &std::path::Path, options: LoadOptions) -> (Vec<u32>, Vec<(u32, f32)>) {
    pollster::block_on(async {
        let gpu = Gpu::new().await.unwrap();
        let model = ChatModel::load(gpu, &DirSource(dir.to_path_buf()), options, &mut |_| {}).await.unwrap();
        let prompt = model.prompt(&[Message::text(Role::User, "Hello! How are you today?")], &[]).unwrap();
        let mut session = model.new_session().unwrap();
        let params = SamplingParams { max_new_tokens: 4, ignore_eos: true, ..Default::default() };
        let mut got = Vec::new();
        let mut first_top = None;
        model
            .generate(&mut session, &prompt, &params, &mut |e| {
                if e.id != u32::MAX {
                    got.push(e.id);
                    first_top.get_or_insert_with(|| e.top.clone());
                }
                true
            })
            .await
            .unwrap();
        (got, first_top.unwrap())
    })
}

/// bf16 and f16 checkpoints load (kept 16-bit on the GPU) and give logits close to f32's.
#[test]
fn half_precision_checkpoints_load() {
    let reference = reference("qwen3_vl");
    let want = &reference.cases[0].top5[0];
    for (dtype, tag) in [("BF16", "bf16"), ("F16", "f16")] {
        let dir = rewritten_fixture("qwen3_vl", tag, |tensors| {
            let content = tensors
                .into_iter()
                .map(|t| {
                    let v = t.to_f32();
                    let bytes: Vec<u8> = match dtype {
                        "BF16" => v.iter().flat_map(|x| half::bf16::from_f32(*x).to_le_bytes()).collect(),
                        _ => v.iter().flat_map(|x| half::f16::from_f32(*x).to_le_bytes()).collect(),
                    };
                    (t.name, dtype, t.shape, bytes)
                })
                .collect();
            vec![("model.safetensors".to_string(), FileContent::Safetensors(content))]
        });
        let (_, top) = first_step_logits(&dir, LoadOptions::default());
        // Rounding every weight to 8 (bf16) or 11 (f16) mantissa bits moves logits a little.
        let tol = if dtype == "BF16" { 0.1 } else { 0.02 };
        for ((gi, gl), (wi, wl)) in top.iter().zip(want).take(1) {
            assert_eq!(gi, wi, "{dtype}: top-1 id");
            assert!((gl - wl).abs() < tol, "{dtype}: top-1 logit {gl} vs f32 reference {wl}");
        }
        let _ = std::fs::remove_dir_all(dir);
    }
}

/// Quantized on load to Q8_0 and Q4_0, the model stays close to f32 (the kernels' exactness
/// is the kernel tests' business; this checks the whole path uses them).
#[test]
fn quantized_on_load_stays_close() {
    let reference = reference("qwen3_vl");
    let want = &reference.cases[0].top5[0];
    for (q, tol) in [(qwglm_engine::tensor::DType::Q8_0, 0.01), (qwglm_engine::tensor::DType::Q4_0, 0.4)] {
        let options = LoadOptions { quantize: Some(q), ..Default::default() };
        let (_, top) = first_step_logits(&fixture("qwen3_vl"), options);
        // The f32 reference's top logits, looked up in the quantized model's top five.
        let (wi, wl) = want[0];
        let got = top.iter().find(|(i, _)| *i == wi).map(|t| t.1);
        let got = got.unwrap_or_else(|| panic!("{q:?}: reference top-1 {wi} not in {top:?}"));
        eprintln!("{q:?}: top-1 logit {got} vs f32 {wl}");
        assert!((got - wl).abs() < tol, "{q:?}: {got} vs {wl}");
    }
}

/// A checkpoint split into shards with `model.safetensors.index.json` gives the same outputs.
#[test]
fn sharded_checkpoint_loads() {
    let dir = rewritten_fixture("qwen2_5_vl", "sharded", |tensors| {
        let files = ["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"];
        let mut shards: [Tensors; 2] = [Vec::new(), Vec::new()];
        let mut weight_map = serde_json::Map::new();
        for (i, t) in tensors.into_iter().enumerate() {
            weight_map.insert(t.name.clone(), files[i % 2].into());
            shards[i % 2].push((t.name, "F32", t.shape, t.data));
        }
        let index = serde_json::json!({"metadata": {}, "weight_map": weight_map});
        let [a, b] = shards;
        vec![
            (files[0].to_string(), FileContent::Safetensors(a)),
            (files[1].to_string(), FileContent::Safetensors(b)),
            ("model.safetensors.index.json".to_string(), FileContent::Raw(serde_json::to_vec(&index).unwrap())),
        ]
    });
    let reference = reference("qwen2_5_vl");
    let (ids, _) = first_step_logits(&dir, LoadOptions::default());
    assert_eq!(ids, reference.cases[0].greedy_ids[..4]);
    let _ = std::fs::remove_dir_all(dir);
}

/// A GGUF twin of the Qwen3-VL fixture (all F32, written by the `gguf` package with
/// llama.cpp's tensor names) gives transformers' outputs exactly as the safetensors does.
#[test]
fn gguf_f32_twin_matches_transformers() {
    let options = LoadOptions { weights: Some("model-f32.gguf".into()), ..Default::default() };
    check_family("qwen3_vl", DirSource(fixture("qwen3_vl")), options);
}

/// Our Q8_0/Q4_0 quantizer gives the bytes the `gguf` package (ggml's rounding) wrote, once
/// repacked, for every quantized tensor of the mixed GGUF.
#[test]
fn gguf_quant_blocks_match_our_quantizer() {
    pollster::block_on(async {
        let src = DirSource(fixture("qwen2_vl"));
        let gguf = qwglm_engine::load::TensorIndex::open(&src, Some("model-mixed.gguf"), None).await.unwrap();
        let st = qwglm_engine::load::TensorIndex::open(&src, None, None).await.unwrap();
        let mut checked = 0;
        for (name, e) in &gguf.entries {
            let g = gguf.read(&src, name).await.unwrap();
            let s = st.read(&src, name).await.unwrap();
            assert_eq!(g.shape, s.shape, "{name}");
            if e.dtype.is_quantized() {
                let ours = s.quantize(e.dtype).unwrap();
                let differing = ours.data.iter().zip(&g.data).filter(|(a, b)| a != b).count();
                // Exact ties may round differently (numpy rounds half to even, ggml away).
                assert!(differing * 1000 <= g.data.len(), "{name}: {differing} of {} bytes differ", g.data.len());
                checked += 1;
            } else {
                let (a, b) = (g.to_f32(), s.to_f32());
                let tol = if g.dtype == qwglm_engine::tensor::DType::F16 { 1e-3 } else { 0.0 };
                assert!(a.iter().zip(&b).all(|(x, y)| (x - y).abs() <= tol * y.abs().max(1.0)), "{name}");
            }
        }
        assert!(checked >= 6, "quantized tensors checked: {checked}");
    });
}

/// The mixed-type GGUF (F16 embedding, Q8_0 attention, Q4_0 MLP) runs close to f32.
#[test]
fn gguf_mixed_types_run_close_to_f32() {
    let reference = reference("qwen2_vl");
    let (wi, wl) = reference.cases[0].top5[0][0];
    let options = LoadOptions { weights: Some("model-mixed.gguf".into()), ..Default::default() };
    let (_, top) = first_step_logits(&fixture("qwen2_vl"), options);
    let got = top.iter().find(|(i, _)| *i == wi).map(|t| t.1).unwrap_or_else(|| panic!("{wi} not in {top:?}"));
    eprintln!("mixed GGUF: top-1 logit {got} vs f32 {wl}");
    assert!((got - wl).abs() < 0.4, "{got} vs {wl}");
}

/// A folder with only llama.cpp files: config, tokenizer, chat template and stop ids come from
/// the text GGUF's metadata, and the text cases match transformers exactly.
#[test]
fn gguf_only_folder_matches_transformers() {
    let options = gguf_options("model-f32.gguf", "mmproj-f32.gguf");
    check_family("qwen2_5_vl", DirSource(fixture("qwen2_5_vl_gguf")), options);
}

/// A Q4_K_M GGUF (Q4_K and Q6_K blocks, read by the quantized kernels) gives the logits of
/// its dequantized safetensors-equivalent twin in transformers.
#[test]
fn q4_k_m_gguf_matches_its_twin() {
    let options = gguf_options("Qwen3-VL-Tiny-Q4_K_M.gguf", "mmproj-Qwen3-VL-Tiny-F16.gguf");
    check_family("qwen3_vl_q4_k_m", DirSource(fixture("qwen3_vl_q4_k_m")), options);
}

/// A folder that records the longest range read from it.
struct Counting(DirSource, std::cell::Cell<u64>);

impl ByteSource for Counting {
    fn describe(&self, file: &str) -> String {
        self.0.describe(file)
    }
    async fn read(&self, file: &str) -> Result<Vec<u8>, LoadError> {
        self.0.read(file).await
    }
    async fn read_range(&self, file: &str, start: u64, len: u64) -> Result<Vec<u8>, LoadError> {
        self.1.set(self.1.get().max(len));
        self.0.read_range(file, start, len).await
    }
    async fn size(&self, file: &str) -> Result<Option<u64>, LoadError> {
        self.0.size(file).await
    }
}

/// Weights stream to the GPU in chunks: with 4 KiB chunks no read is longer than that (or
/// the safetensors header), and with a 96 KiB storage-binding limit the embedding and tied LM
/// head are split over several buffers; the outputs still match transformers exactly.
#[test]
fn weights_stream_in_bounded_chunks_into_small_bindings() {
    let chunk = 4096;
    let src = Counting(DirSource(fixture("qwen3_vl")), Default::default());
    let options = LoadOptions { chunk_bytes: chunk, max_context: 256, prefill_chunk: 64, ..Default::default() };
    let mut gpu = pollster::block_on(Gpu::new()).expect("a GPU adapter (lavapipe)");
    Rc::get_mut(&mut gpu).unwrap().adapter.max_storage_binding_bytes = 96 << 10;
    check_family_on(gpu.clone(), "qwen3_vl", &src, options.clone());
    // Longer reads are only the header, vectors and the position table (read whole), and
    // rows longer than a chunk (read one at a time).
    let file = std::fs::read(fixture("qwen3_vl").join("model.safetensors")).unwrap();
    let header = 8 + u64::from_le_bytes(file[..8].try_into().unwrap());
    let index = pollster::block_on(qwglm_engine::load::TensorIndex::open(&src.0, None, None)).unwrap();
    let whole = index.entries.values().filter(|e| e.shape.len() == 1 || e.name.ends_with("pos_embed.weight"));
    let row = index.entries.values().map(|e| e.len / e.shape[0] as u64);
    let bound = whole.map(|e| e.len).chain(row).chain([chunk, header]).max().unwrap();
    assert!(src.1.get() <= bound, "longest read {} bytes, bound {bound}", src.1.get());
    assert!(bound < file.len() as u64 / 50, "the bound {bound} is far below the file");
    let model = pollster::block_on(ChatModel::load(gpu, &src, options, &mut |_| {})).unwrap();
    assert!(model.text.embed_tokens.shards.len() > 1, "the embedding is split");
}

/// A context whose KV cache does not fit one storage binding is refused before any weight is
/// read, with the sizes in the message.
#[test]
fn too_large_a_context_is_refused_before_loading() {
    let src = Counting(DirSource(fixture("qwen3_vl")), Default::default());
    let mut gpu = pollster::block_on(Gpu::new()).expect("a GPU adapter (lavapipe)");
    Rc::get_mut(&mut gpu).unwrap().adapter.max_storage_binding_bytes = 96 << 10;
    let options = LoadOptions { max_context: 4096, ..Default::default() };
    let err = pollster::block_on(ChatModel::load(gpu, &src, options, &mut |_| {})).err().expect("refused");
    let msg = err.to_string();
    assert!(msg.contains("KV cache of one layer") && msg.contains("98304"), "{msg}");
    let file = std::fs::read(fixture("qwen3_vl").join("model.safetensors")).unwrap();
    let header = 8 + u64::from_le_bytes(file[..8].try_into().unwrap());
    assert!(src.1.get() <= header, "no weight was read ({} bytes)", src.1.get());
}
