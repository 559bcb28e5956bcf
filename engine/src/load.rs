//! Byte sources and the model folder in Hugging Face layout.
//!
//! A [`ByteSource`] reads whole small files (configs, tokenizer) and byte ranges of large ones
//! (weights), so tensors stream to the GPU one at a time: peak host memory is the largest single
//! tensor, never the file. Sources: a local folder, an HTTP base URL in the Hub's
//! `/<repo>/resolve/<revision>/` layout (native: ureq; browser: `fetch` with `Range`).

use std::collections::{BTreeMap, HashMap};

use qwglm_vision::PreprocessConfig;

use crate::error::LoadError;
use crate::formats::gguf;
use crate::formats::gguf_model;
use crate::formats::hf_config::{self, Family, ModelConfig, VisionConfig};
use crate::formats::safetensors::{self, Encoding, TensorEntry};
use crate::tensor::{DType, HostTensor};

/// Where model files come from.
#[allow(async_fn_in_trait)]
pub trait ByteSource {
    /// Where `file` is, for messages.
    fn describe(&self, file: &str) -> String;
    /// The whole of a (small) file; [`LoadError::NotFound`] when it does not exist.
    async fn read(&self, file: &str) -> Result<Vec<u8>, LoadError>;
    /// `len` bytes of `file` from `start`; fails if fewer are there.
    async fn read_range(&self, file: &str, start: u64, len: u64) -> Result<Vec<u8>, LoadError>;
    /// The size of `file` in bytes, if the source can tell without reading it.
    async fn size(&self, file: &str) -> Result<Option<u64>, LoadError>;
}

/// A file that may be absent.
pub async fn read_optional<S: ByteSource>(src: &S, file: &str) -> Result<Option<Vec<u8>>, LoadError> {
    match src.read(file).await {
        Ok(b) => Ok(Some(b)),
        Err(LoadError::NotFound { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

/// A local folder.
#[cfg(not(target_arch = "wasm32"))]
pub struct DirSource(pub std::path::PathBuf);

#[cfg(not(target_arch = "wasm32"))]
impl ByteSource for DirSource {
    fn describe(&self, file: &str) -> String {
        self.0.join(file).display().to_string()
    }

    async fn read(&self, file: &str) -> Result<Vec<u8>, LoadError> {
        let path = self.0.join(file);
        std::fs::read(&path).map_err(|e| io_error(&path.display().to_string(), e))
    }

    async fn read_range(&self, file: &str, start: u64, len: u64) -> Result<Vec<u8>, LoadError> {
        use std::io::{Read, Seek, SeekFrom};
        let path = self.0.join(file);
        let name = path.display().to_string();
        let mut f = std::fs::File::open(&path).map_err(|e| io_error(&name, e))?;
        f.seek(SeekFrom::Start(start)).map_err(|e| io_error(&name, e))?;
        let mut buf = vec![0u8; len as usize];
        f.read_exact(&mut buf).map_err(|e| LoadError::Io {
            file: name.clone(),
            message: format!("reading {len} bytes at {start}: {e} (truncated file?)"),
        })?;
        Ok(buf)
    }

    async fn size(&self, file: &str) -> Result<Option<u64>, LoadError> {
        let path = self.0.join(file);
        let meta = std::fs::metadata(&path).map_err(|e| io_error(&path.display().to_string(), e))?;
        Ok(Some(meta.len()))
    }
}

#[cfg(not(target_arch = "wasm32"))]
fn io_error(file: &str, e: std::io::Error) -> LoadError {
    if e.kind() == std::io::ErrorKind::NotFound {
        LoadError::NotFound { file: file.to_string() }
    } else {
        LoadError::Io { file: file.to_string(), message: e.to_string() }
    }
}

/// Files under an HTTP base URL, e.g. `https://huggingface.co/Qwen/Qwen3-VL-2B-Instruct/resolve/main`.
pub struct HttpSource {
    base: String,
}

impl HttpSource {
    pub fn new(base: &str) -> Self {
        HttpSource { base: base.trim_end_matches('/').to_string() }
    }

    /// The base URL of a Hub repository at a revision.
    pub fn hub(repo: &str, revision: &str) -> Self {
        Self::new(&format!("https://huggingface.co/{repo}/resolve/{revision}"))
    }

    fn url(&self, file: &str) -> String {
        format!("{}/{}", self.base, file)
    }
}

#[cfg(not(target_arch = "wasm32"))]
impl HttpSource {
    fn get(&self, file: &str, range: Option<(u64, u64)>) -> Result<Vec<u8>, LoadError> {
        let url = self.url(file);
        let mut req = ureq::get(&url);
        if let Some((start, len)) = range {
            req = req.header("Range", &format!("bytes={}-{}", start, start + len.max(1) - 1));
        }
        let mut resp = match req.call() {
            Ok(r) => r,
            Err(ureq::Error::StatusCode(404)) => return Err(LoadError::NotFound { file: url }),
            Err(e) => return Err(LoadError::Io { file: url, message: e.to_string() }),
        };
        let status = resp.status().as_u16();
        let body = resp
            .body_mut()
            .with_config()
            .limit(u64::MAX)
            .read_to_vec()
            .map_err(|e| LoadError::Io { file: url.clone(), message: e.to_string() })?;
        range_result(&url, status, body, range)
    }
}

/// Checks a response body against the range asked for; a server that ignored `Range` (200)
/// sent the whole file, from which the range is cut.
fn range_result(url: &str, status: u16, body: Vec<u8>, range: Option<(u64, u64)>) -> Result<Vec<u8>, LoadError> {
    let Some((start, len)) = range else {
        return Ok(body);
    };
    let slice = match status {
        206 => &body[..],
        200 => body.get(start as usize..).unwrap_or(&[]),
        other => return Err(LoadError::Io { file: url.to_string(), message: format!("HTTP {other}") }),
    };
    if (slice.len() as u64) < len {
        return Err(LoadError::Io {
            file: url.to_string(),
            message: format!("asked for {len} bytes at {start}, got {} (truncated file?)", slice.len()),
        });
    }
    Ok(slice[..len as usize].to_vec())
}

#[cfg(not(target_arch = "wasm32"))]
impl ByteSource for HttpSource {
    fn describe(&self, file: &str) -> String {
        self.url(file)
    }

    async fn read(&self, file: &str) -> Result<Vec<u8>, LoadError> {
        self.get(file, None)
    }

    async fn read_range(&self, file: &str, start: u64, len: u64) -> Result<Vec<u8>, LoadError> {
        self.get(file, Some((start, len)))
    }

    /// From a HEAD request's `Content-Length` (redirects followed, as the Hub's CDN needs).
    async fn size(&self, file: &str) -> Result<Option<u64>, LoadError> {
        let url = self.url(file);
        match ureq::head(&url).call() {
            Ok(r) => Ok(r.headers().get("content-length").and_then(|v| v.to_str().ok()).and_then(|v| v.parse().ok())),
            Err(ureq::Error::StatusCode(404)) => Err(LoadError::NotFound { file: url }),
            Err(e) => Err(LoadError::Io { file: url, message: e.to_string() }),
        }
    }
}

#[cfg(target_arch = "wasm32")]
mod web {
    use wasm_bindgen::{JsCast, JsValue};
    use wasm_bindgen_futures::JsFuture;

    use super::{range_result, ByteSource, HttpSource};
    use crate::error::LoadError;

    fn js_err(url: &str, e: JsValue) -> LoadError {
        LoadError::Io { file: url.to_string(), message: format!("{e:?}") }
    }

    /// The whole body of a GET.
    pub async fn fetch_bytes(url: &str) -> Result<Vec<u8>, LoadError> {
        fetch(url, None).await
    }

    /// `fetch` from the worker's (or window's) global scope.
    async fn fetch(url: &str, range: Option<(u64, u64)>) -> Result<Vec<u8>, LoadError> {
        let header = range.map(|(start, len)| format!("bytes={}-{}", start, start + len.max(1) - 1));
        let resp = send(url, "GET", header.as_deref()).await?;
        let status = resp.status();
        let buf = JsFuture::from(resp.array_buffer().map_err(|e| js_err(url, e))?).await.map_err(|e| js_err(url, e))?;
        let body = js_sys::Uint8Array::new(&buf).to_vec();
        if !(200..300).contains(&status) {
            return Err(LoadError::Io { file: url.to_string(), message: format!("HTTP {status}") });
        }
        range_result(url, status, body, range)
    }

    /// A request with an optional `Range` header value; 404 is [`LoadError::NotFound`].
    pub async fn send(url: &str, method: &str, range: Option<&str>) -> Result<web_sys::Response, LoadError> {
        let init = web_sys::RequestInit::new();
        init.set_method(method);
        let headers = web_sys::Headers::new().map_err(|e| js_err(url, e))?;
        if let Some(r) = range {
            headers.set("Range", r).map_err(|e| js_err(url, e))?;
        }
        init.set_headers(&headers);
        let req = web_sys::Request::new_with_str_and_init(url, &init).map_err(|e| js_err(url, e))?;
        let global = js_sys::global();
        let fetch: js_sys::Function = js_sys::Reflect::get(&global, &JsValue::from_str("fetch"))
            .map_err(|e| js_err(url, e))?
            .dyn_into()
            .map_err(|e| js_err(url, e))?;
        let promise: js_sys::Promise =
            fetch.call1(&global, &req).map_err(|e| js_err(url, e))?.dyn_into().map_err(|e| js_err(url, e))?;
        let resp: web_sys::Response =
            JsFuture::from(promise).await.map_err(|e| js_err(url, e))?.dyn_into().map_err(|e| js_err(url, e))?;
        if resp.status() == 404 {
            return Err(LoadError::NotFound { file: url.to_string() });
        }
        Ok(resp)
    }

    impl ByteSource for HttpSource {
        fn describe(&self, file: &str) -> String {
            self.url(file)
        }

        async fn read(&self, file: &str) -> Result<Vec<u8>, LoadError> {
            fetch(&self.url(file), None).await
        }

        async fn read_range(&self, file: &str, start: u64, len: u64) -> Result<Vec<u8>, LoadError> {
            fetch(&self.url(file), Some((start, len))).await
        }

        /// From a HEAD request's `Content-Length`.
        async fn size(&self, file: &str) -> Result<Option<u64>, LoadError> {
            let url = self.url(file);
            let resp = send(&url, "HEAD", None).await?;
            Ok(resp.headers().get("content-length").ok().flatten().and_then(|v| v.parse().ok()))
        }
    }
}

#[cfg(target_arch = "wasm32")]
pub use web::{fetch_bytes, send as web_send};

/// Sampling defaults from `generation_config.json`.
#[derive(Clone, Debug, Default, serde::Deserialize, serde::Serialize)]
pub struct GenerationConfig {
    #[serde(default, deserialize_with = "one_or_many")]
    pub eos_token_id: Vec<u32>,
    pub temperature: Option<f32>,
    pub top_k: Option<usize>,
    pub top_p: Option<f32>,
    pub repetition_penalty: Option<f32>,
    pub do_sample: Option<bool>,
}

pub(crate) fn one_or_many<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<u32>, D::Error> {
    #[derive(serde::Deserialize)]
    #[serde(untagged)]
    enum Ids {
        One(u32),
        Many(Vec<u32>),
        Null(()),
    }
    Ok(match <Ids as serde::Deserialize>::deserialize(d)? {
        Ids::One(i) => vec![i],
        Ids::Many(v) => v,
        Ids::Null(()) => Vec::new(),
    })
}

/// Every tensor of a checkpoint (one file, a sharded index, or a GGUF with its `mmproj`), by
/// Hugging Face name.
#[derive(Default)]
pub struct TensorIndex {
    pub entries: HashMap<String, TensorEntry>,
    /// Tensors stored in two parts and joined on read: an `mmproj` patch embedding's
    /// temporal slices, under the name of the whole kernel.
    pub joined: HashMap<String, [TensorEntry; 2]>,
    /// The text GGUF's metadata, when the weights are a GGUF.
    pub gguf: Option<GgufMeta>,
    /// The `mmproj` file's metadata, with its family and vision config.
    pub mmproj: Option<(GgufMeta, Family, VisionConfig)>,
}

/// One GGUF file's name and metadata.
pub struct GgufMeta {
    pub file: String,
    pub kv: BTreeMap<String, gguf::Value>,
}

impl GgufMeta {
    pub fn meta(&self) -> gguf_model::Meta<'_> {
        gguf_model::Meta { file: &self.file, kv: &self.kv }
    }
}

impl TensorIndex {
    /// Reads `model.safetensors.index.json` and each shard's header, or `model.safetensors`'s;
    /// with `weights`, that one file instead (`.safetensors` or `.gguf`); with `mmproj`, the
    /// vision tower from that llama.cpp `mmproj` GGUF.
    pub async fn open<S: ByteSource>(src: &S, weights: Option<&str>, mmproj: Option<&str>) -> Result<Self, LoadError> {
        let mut index = match weights.filter(|f| f.ends_with(".gguf")) {
            Some(file) => {
                let (kv, tensors) = read_gguf(src, file).await?;
                let entries = tensors
                    .into_iter()
                    .filter_map(|e| gguf::hf_name(&e.name).map(|hf| (hf.clone(), TensorEntry { name: hf, ..e })))
                    .collect();
                TensorIndex { entries, gguf: Some(GgufMeta { file: file.to_string(), kv }), ..Default::default() }
            }
            None => Self::open_safetensors(src, weights).await?,
        };
        if let Some(file) = mmproj {
            index.add_mmproj(src, file).await?;
        }
        Ok(index)
    }

    async fn open_safetensors<S: ByteSource>(src: &S, weights: Option<&str>) -> Result<Self, LoadError> {
        let files = match (weights, read_optional(src, "model.safetensors.index.json").await?) {
            (Some(file), _) => vec![file.to_string()],
            (None, Some(bytes)) => {
                #[derive(serde::Deserialize)]
                struct Index {
                    weight_map: HashMap<String, String>,
                }
                let idx: Index = serde_json::from_slice(&bytes).map_err(|e| LoadError::Json {
                    file: "model.safetensors.index.json".into(),
                    message: e.to_string(),
                })?;
                let mut files: Vec<String> = idx.weight_map.into_values().collect();
                files.sort();
                files.dedup();
                files
            }
            (None, None) => vec!["model.safetensors".to_string()],
        };
        let mut entries = HashMap::new();
        for file in files {
            check_file_name(&file)?;
            let size = src.size(&file).await?;
            let first8 = src.read_range(&file, 0, 8).await?;
            let n = safetensors::header_len(&file, &first8, size)?;
            let header = src.read_range(&file, 8, n).await?;
            for e in safetensors::parse_header(&file, &header, size)? {
                entries.insert(e.name.clone(), e);
            }
        }
        Ok(TensorIndex { entries, ..Default::default() })
    }

    /// Adds the vision tower of an `mmproj` GGUF under `visual.` names.
    async fn add_mmproj<S: ByteSource>(&mut self, src: &S, file: &str) -> Result<(), LoadError> {
        let (kv, tensors) = read_gguf(src, file).await?;
        let meta = GgufMeta { file: file.to_string(), kv };
        let (family, vision) = gguf_model::vision_config(&meta.meta(), &tensors)?;
        let mut slices: [Option<TensorEntry>; 2] = [None, None];
        for e in tensors {
            let Some(hf) = gguf_model::mmproj_hf_name(&e.name, family, &vision.deepstack_visual_indexes) else {
                continue;
            };
            match gguf_model::PATCH_SLICES.iter().position(|s| *s == hf) {
                Some(i) => slices[i] = Some(e),
                None => {
                    self.entries.insert(hf.clone(), TensorEntry { name: hf, ..e });
                }
            }
        }
        match slices {
            [Some(a), Some(b)]
                if a.shape == b.shape && a.dtype == b.dtype && !a.dtype.is_quantized() && a.shape.len() == 4 =>
            {
                self.joined.insert("visual.patch_embed.proj.weight".into(), [a, b]);
            }
            [None, None] => {}
            _ => {
                return Err(LoadError::Gguf {
                    file: file.to_string(),
                    message:
                        "v.patch_embd.weight and v.patch_embd.weight.1 must both be there, unquantized, of one shape \
                              [out, channels, patch, patch]"
                            .into(),
                })
            }
        }
        self.mmproj = Some((meta, family, vision));
        Ok(())
    }

    pub fn contains(&self, name: &str) -> bool {
        self.entries.contains_key(name) || self.joined.contains_key(name)
    }

    /// Total bytes of the named tensors.
    pub fn bytes_of<'a>(&self, names: impl IntoIterator<Item = &'a String>) -> u64 {
        names
            .into_iter()
            .map(|n| match (self.entries.get(n), self.joined.get(n)) {
                (Some(e), _) => e.len,
                (None, Some([a, b])) => a.len + b.len,
                (None, None) => 0,
            })
            .sum()
    }

    /// The storage type and shape of a tensor, without reading it.
    pub fn info(&self, name: &str) -> Result<(DType, Vec<usize>), LoadError> {
        if let Some([a, _]) = self.joined.get(name) {
            return Ok((a.dtype, [&a.shape[..2], &[2], &a.shape[2..]].concat()));
        }
        let e = self.entries.get(name).ok_or_else(|| LoadError::MissingTensor(name.to_string()))?;
        Ok((e.dtype, e.shape.clone()))
    }

    /// Bytes one row (the first dimension) of a tensor takes in its file.
    pub fn file_row_bytes(&self, name: &str) -> Result<u64, LoadError> {
        if let Some([a, b]) = self.joined.get(name) {
            return Ok((a.len + b.len) / a.shape[0].max(1) as u64);
        }
        let e = self.entries.get(name).ok_or_else(|| LoadError::MissingTensor(name.to_string()))?;
        Ok(e.len / e.shape.first().copied().unwrap_or(1).max(1) as u64)
    }

    /// Rows `start..start + n` of a tensor (along its first dimension), with one range read:
    /// how weights stream to the GPU without the whole tensor in memory. Quantized rows are
    /// whole blocks, so each row repacks on its own.
    pub async fn read_rows<S: ByteSource>(
        &self,
        src: &S,
        name: &str,
        start: usize,
        n: usize,
    ) -> Result<HostTensor, LoadError> {
        let (dtype, shape) = self.info(name)?;
        let rows = shape.first().copied().unwrap_or(1);
        if start + n > rows {
            return Err(LoadError::Shape { tensor: name.to_string(), expected: vec![start + n], found: shape });
        }
        let mut out_shape = shape.clone();
        out_shape[0] = n;
        if self.joined.contains_key(name) {
            // Small (a patch embedding): joined whole, then cut.
            let t = self.read(src, name).await?;
            let row = t.data.len() / rows.max(1);
            let data = t.data[start * row..(start + n) * row].to_vec();
            return Ok(HostTensor { name: name.to_string(), dtype, shape: out_shape, data });
        }
        let e = &self.entries[name];
        let row = self.file_row_bytes(name)?;
        let bytes = src.read_range(&e.file, e.offset + start as u64 * row, n as u64 * row).await?;
        let data = match e.encoding {
            Encoding::Raw => bytes,
            Encoding::GgmlBlocks => gguf::repack_blocks(e.dtype, &bytes),
        };
        Ok(HostTensor { name: name.to_string(), dtype, shape: out_shape, data })
    }

    pub async fn read<S: ByteSource>(&self, src: &S, name: &str) -> Result<HostTensor, LoadError> {
        if let Some([a, b]) = self.joined.get(name) {
            let (x, y) = (self.read_entry(src, a).await?, self.read_entry(src, b).await?);
            let shape = [&a.shape[..2], &[2], &a.shape[2..]].concat();
            let data = gguf_model::join_patch_slices(&x, &y, &a.shape, a.dtype.size_bytes());
            return Ok(HostTensor { name: name.to_string(), dtype: a.dtype, shape, data });
        }
        let e = self.entries.get(name).ok_or_else(|| LoadError::MissingTensor(name.to_string()))?;
        let data = self.read_entry(src, e).await?;
        Ok(HostTensor { name: name.to_string(), dtype: e.dtype, shape: e.shape.clone(), data })
    }

    async fn read_entry<S: ByteSource>(&self, src: &S, e: &TensorEntry) -> Result<Vec<u8>, LoadError> {
        let data = src.read_range(&e.file, e.offset, e.len).await?;
        Ok(match e.encoding {
            Encoding::Raw => data,
            Encoding::GgmlBlocks => gguf::repack_blocks(e.dtype, &data),
        })
    }
}

/// A GGUF file's metadata and tensors (llama.cpp names). The header is read in growing
/// prefixes (metadata with a whole vocabulary runs to megabytes).
async fn read_gguf<S: ByteSource>(
    src: &S,
    file: &str,
) -> Result<(BTreeMap<String, gguf::Value>, Vec<TensorEntry>), LoadError> {
    check_file_name(file)?;
    let size = src.size(file).await?;
    let bad = |message: String| LoadError::Gguf { file: file.to_string(), message };
    let mut want: u64 = 1 << 20;
    loop {
        let len = size.map_or(want, |s| want.min(s));
        let prefix = match src.read_range(file, 0, len).await {
            Ok(p) => p,
            // Unknown size and a file shorter than the prefix: take what the source has.
            Err(_) if size.is_none() && want > 1 << 20 => {
                return Err(bad("header runs past the end of the file".into()))
            }
            Err(e) => return Err(e),
        };
        match gguf::parse(file, &prefix, size) {
            Ok(h) => return Ok((h.metadata, h.tensors)),
            Err(gguf::ParseError::NeedMore) if size.is_none_or(|s| len < s) && want < 1 << 30 => want *= 4,
            Err(gguf::ParseError::NeedMore) => return Err(bad("the header is truncated".into())),
            Err(gguf::ParseError::Bad(m)) => return Err(bad(m)),
        }
    }
}

/// Refuses weight file names that would leave the model folder.
fn check_file_name(file: &str) -> Result<(), LoadError> {
    if file.contains("..") || file.starts_with('/') || file.contains('\\') {
        return Err(LoadError::Safetensors {
            file: file.to_string(),
            message: "file name escapes the model folder".into(),
        });
    }
    Ok(())
}

/// The small files of a model folder, read up front. A folder with only GGUF files gets its
/// config, tokenizer, chat template and stop ids from the text GGUF's metadata and its image
/// preprocessing from the `mmproj` file; Hugging Face files, where present, win.
pub struct ModelFiles {
    pub config: ModelConfig,
    pub tokenizer_json: Vec<u8>,
    pub chat_template: String,
    pub generation: GenerationConfig,
    /// How images are resized and laid out for the vision tower.
    pub preprocess: PreprocessConfig,
    pub tensors: TensorIndex,
}

impl ModelFiles {
    /// `weights` names the weight file when it is not `model.safetensors` (or its index);
    /// `mmproj` a llama.cpp vision file.
    pub async fn open<S: ByteSource>(src: &S, weights: Option<&str>, mmproj: Option<&str>) -> Result<Self, LoadError> {
        let tensors = TensorIndex::open(src, weights, mmproj).await?;
        let gguf = tensors.gguf.as_ref().map(GgufMeta::meta);
        let mmproj_vision = tensors.mmproj.as_ref().map(|(_, f, v)| (*f, v.clone()));
        let config = match (read_optional(src, "config.json").await?, &gguf) {
            (Some(bytes), _) => {
                let mut c = hf_config::parse(&bytes)?;
                if let Some((_, v)) = mmproj_vision.filter(|_| c.vision.is_none()) {
                    c.vision = Some(v);
                }
                c
            }
            (None, Some(meta)) => gguf_model::model_config(meta, &tensors.entries, mmproj_vision)?,
            (None, None) => return Err(LoadError::NotFound { file: src.describe("config.json") }),
        };
        let tokenizer_json = match (read_optional(src, "tokenizer.json").await?, &gguf) {
            (Some(b), _) => b,
            (None, Some(meta)) => gguf_model::tokenizer_json(meta)?,
            (None, None) => return Err(LoadError::NotFound { file: src.describe("tokenizer.json") }),
        };
        let chat_template = match (find_chat_template(src).await?, gguf.as_ref().and_then(gguf_model::chat_template)) {
            (Some(t), _) | (None, Some(t)) => t,
            (None, None) => {
                return Err(LoadError::Template(
                    "the model has no chat template (chat_template.jinja, chat_template.json, \
                     tokenizer_config.json or GGUF metadata)"
                        .into(),
                ))
            }
        };
        let generation = match (read_optional(src, "generation_config.json").await?, &gguf) {
            (Some(b), _) => serde_json::from_slice(&b)
                .map_err(|e| LoadError::Json { file: "generation_config.json".into(), message: e.to_string() })?,
            (None, Some(meta)) => gguf_model::generation(meta),
            (None, None) => GenerationConfig::default(),
        };
        let defaults = match (&tensors.mmproj, config.family) {
            (Some((m, family, _)), _) => gguf_model::preprocess(&m.meta(), *family),
            (None, Family::Qwen3Vl) => PreprocessConfig::qwen3_vl(),
            (None, _) => PreprocessConfig::qwen2_vl(),
        };
        let preprocess = match read_optional(src, "preprocessor_config.json").await? {
            Some(bytes) => PreprocessConfig::from_json(&bytes, defaults)
                .map_err(|e| LoadError::Json { file: "preprocessor_config.json".into(), message: e.to_string() })?,
            None => defaults,
        };
        Ok(ModelFiles { config, tokenizer_json, chat_template, generation, preprocess, tensors })
    }
}

/// The model's own chat template: `chat_template.jinja`, else `chat_template.json`, else the
/// `chat_template` field of `tokenizer_config.json`.
async fn find_chat_template<S: ByteSource>(src: &S) -> Result<Option<String>, LoadError> {
    if let Some(b) = read_optional(src, "chat_template.jinja").await? {
        return String::from_utf8(b).map(Some).map_err(|e| LoadError::Template(e.to_string()));
    }
    for file in ["chat_template.json", "tokenizer_config.json"] {
        if let Some(b) = read_optional(src, file).await? {
            let v: serde_json::Value = serde_json::from_slice(&b)
                .map_err(|e| LoadError::Json { file: file.into(), message: e.to_string() })?;
            if let Some(t) = v.get("chat_template").and_then(|t| t.as_str()) {
                return Ok(Some(t.to_string()));
            }
        }
    }
    Ok(None)
}
