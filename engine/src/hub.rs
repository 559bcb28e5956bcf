//! Model downloads from the Hugging Face Hub (or any server in its layout) into a local
//! [`Store`]: the browser's origin-private file system, or a folder natively.
//!
//! - A repository at a revision is listed with `GET {endpoint}/api/models/{repo}/tree/{rev}`
//!   (file sizes, and the SHA-256 of LFS files) and pinned to its commit
//!   (`/api/models/{repo}/revision/{rev}`); the listing is kept as the model's manifest, so a
//!   later visit loads with no network at all.
//! - Files come from `{endpoint}/{repo}/resolve/{commit}/{file}`. A file that is partly there
//!   (an interrupted download, a reload) resumes with `Range: bytes={have}-`.
//! - Every byte goes through SHA-256 as it arrives (the part already stored is hashed first
//!   on resume); a file is marked complete only when its size and hash match the listing. A
//!   mismatch deletes it; a failed write (a full quota) leaves it partial and resumable,
//!   never marked complete.
//! - [`CachedSource`] reads complete files back by range for the loader.

use sha2::{Digest, Sha256};

use crate::error::LoadError;
use crate::load::ByteSource;

/// A model repository at a revision on a Hub-layout server.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Repo {
    /// `https://huggingface.co`, or a local server's base.
    pub endpoint: String,
    /// `Qwen/Qwen3-VL-2B-Instruct`.
    pub repo: String,
    /// A branch, tag or commit (`main`).
    pub revision: String,
}

impl Repo {
    pub fn hub(repo: &str) -> Self {
        Repo { endpoint: "https://huggingface.co".into(), repo: repo.into(), revision: "main".into() }
    }

    fn base(&self) -> &str {
        self.endpoint.trim_end_matches('/')
    }

    /// Where `file` is downloaded from, at `revision` (a commit once pinned).
    pub fn file_url(&self, revision: &str, file: &str) -> String {
        format!("{}/{}/resolve/{revision}/{file}", self.base(), self.repo)
    }

    fn tree_url(&self) -> String {
        format!("{}/api/models/{}/tree/{}?recursive=true", self.base(), self.repo, self.revision)
    }

    fn revision_url(&self) -> String {
        format!("{}/api/models/{}/revision/{}", self.base(), self.repo, self.revision)
    }

    /// The store folder of this repository and revision.
    pub fn key(&self) -> String {
        let clean = |s: &str| s.replace(['/', ':', '\\'], "~");
        format!("{}@{}", clean(&self.repo), clean(&self.revision))
    }
}

/// One file of a repository listing.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RepoFile {
    pub path: String,
    pub size: u64,
    /// Lower-case hex SHA-256, listed by the Hub for LFS files.
    pub sha256: Option<String>,
}

/// A repository pinned to a commit, with its files: what the store keeps per model.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Manifest {
    pub repo: Repo,
    pub commit: String,
    pub files: Vec<RepoFile>,
}

impl Manifest {
    pub fn file(&self, path: &str) -> Option<&RepoFile> {
        self.files.iter().find(|f| f.path == path)
    }
}

/// The files a model needs from a repository, and which of them are the weights and the
/// vision file when they are GGUFs.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ModelChoice {
    pub files: Vec<String>,
    /// The weight file, when not `model.safetensors` or its index (a GGUF).
    pub weights: Option<String>,
    pub mmproj: Option<String>,
    /// Bytes of `files`.
    pub bytes: u64,
}

/// Small files the loader reads when a repository has them.
const SMALL_FILES: [&str; 7] = [
    "config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "chat_template.json",
    "chat_template.jinja",
    "generation_config.json",
    "preprocessor_config.json",
];

/// Chooses the files of a model in `m`: with `gguf` (a quantization tag such as `Q4_K_M`),
/// the GGUF whose name holds the tag and the repository's `mmproj` file (F16 preferred);
/// else the safetensors weights (one file, or an index and its shards). The Hugging Face
/// small files come along where present.
pub fn choose_files(m: &Manifest, gguf: Option<&str>) -> Result<ModelChoice, LoadError> {
    let has = |p: &str| m.file(p).is_some();
    let mut files: Vec<String> = SMALL_FILES.iter().filter(|f| has(f)).map(|f| f.to_string()).collect();
    let (mut weights, mut mmproj) = (None, None);
    let lower = |s: &str| s.to_ascii_lowercase();
    match gguf {
        Some(tag) => {
            let tag = lower(tag);
            let is_mmproj = |p: &str| lower(p.rsplit('/').next().unwrap_or(p)).starts_with("mmproj");
            let w = m
                .files
                .iter()
                .find(|f| f.path.ends_with(".gguf") && !is_mmproj(&f.path) && lower(&f.path).contains(&tag))
                .ok_or_else(|| LoadError::NotFound { file: format!("a {tag} GGUF in {}", m.repo.repo) })?;
            let projs: Vec<&RepoFile> =
                m.files.iter().filter(|f| f.path.ends_with(".gguf") && is_mmproj(&f.path)).collect();
            let p = projs.iter().find(|f| lower(&f.path).contains("f16")).or(projs.first());
            weights = Some(w.path.clone());
            files.push(w.path.clone());
            if let Some(p) = p {
                mmproj = Some(p.path.clone());
                files.push(p.path.clone());
            }
        }
        None => {
            if has("model.safetensors.index.json") {
                files.push("model.safetensors.index.json".into());
                files.extend(
                    m.files
                        .iter()
                        .filter(|f| f.path.ends_with(".safetensors") && !f.path.contains('/'))
                        .map(|f| f.path.clone()),
                );
            } else if has("model.safetensors") {
                files.push("model.safetensors".into());
            } else if has("model.bin") && has("config.json") {
                // A CTranslate2 model (faster-whisper repositories).
                files.push("model.bin".into());
            } else {
                return Err(LoadError::NotFound { file: format!("model.safetensors in {}", m.repo.repo) });
            }
        }
    }
    let bytes = files.iter().filter_map(|f| m.file(f)).map(|f| f.size).sum();
    Ok(ModelChoice { files, weights, mmproj, bytes })
}

/// Parses the Hub's tree listing: entries `{"type": "file", "path", "size", "lfs": {"oid",
/// "size"}}` (directories are skipped).
pub fn parse_tree(bytes: &[u8]) -> Result<Vec<RepoFile>, LoadError> {
    #[derive(serde::Deserialize)]
    struct Lfs {
        oid: String,
        size: Option<u64>,
    }
    #[derive(serde::Deserialize)]
    struct Entry {
        #[serde(rename = "type")]
        kind: String,
        path: String,
        size: Option<u64>,
        lfs: Option<Lfs>,
    }
    let entries: Vec<Entry> = serde_json::from_slice(bytes)
        .map_err(|e| LoadError::Json { file: "repository listing".into(), message: e.to_string() })?;
    Ok(entries
        .into_iter()
        .filter(|e| e.kind == "file")
        .map(|e| {
            let size = e.lfs.as_ref().and_then(|l| l.size).or(e.size).unwrap_or(0);
            let sha256 = e.lfs.map(|l| l.oid.to_ascii_lowercase()).filter(|h| h.len() == 64);
            RepoFile { path: e.path, size, sha256 }
        })
        .collect())
}

/// Files and their sizes under one folder of a local store.
#[allow(async_fn_in_trait)]
pub trait Store {
    /// Bytes stored for `path` (complete or partial), `None` when absent.
    async fn len(&self, path: &str) -> Result<Option<u64>, LoadError>;
    /// Appends to `path` (created when absent).
    async fn append(&self, path: &str, data: &[u8]) -> Result<(), LoadError>;
    /// Cuts `path` to `len` bytes (0 empties it).
    async fn truncate(&self, path: &str, len: u64) -> Result<(), LoadError>;
    async fn read_range(&self, path: &str, start: u64, len: u64) -> Result<Vec<u8>, LoadError>;
    /// Removes a file or a whole folder.
    async fn remove(&self, path: &str) -> Result<(), LoadError>;
    /// The names of the top-level folders.
    async fn folders(&self) -> Result<Vec<String>, LoadError>;
    /// Releases open handles (the browser locks a file while a handle is open).
    async fn close(&self) {}
}

/// What a download reports as it goes.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct DownloadProgress {
    pub file: String,
    /// Bytes stored of all the model's files.
    pub bytes_done: u64,
    pub bytes_total: u64,
    /// Bytes fetched over the network in this session (resumed bytes excluded).
    pub fetched: u64,
    /// "checking", "downloading", "verifying" or "done".
    pub stage: String,
}

/// A streaming HTTP body.
#[allow(async_fn_in_trait)]
pub trait Body {
    /// The next chunk, `None` at the end.
    async fn next(&mut self) -> Result<Option<Vec<u8>>, LoadError>;
}

/// The network side of a download.
#[allow(async_fn_in_trait)]
pub trait Http {
    type Body: Body;
    /// The whole body of a small GET.
    async fn get(&self, url: &str) -> Result<Vec<u8>, LoadError>;
    /// A GET from byte `from` on (`Range: bytes={from}-` when `from > 0`): the status and the
    /// body as a stream.
    async fn get_from(&self, url: &str, from: u64) -> Result<(u16, Self::Body), LoadError>;
}

const MANIFEST: &str = ".manifest.json";
const COMPLETE: &str = ".complete";

/// The manifest stored for `repo`, if it was downloaded (or started) before.
pub async fn stored_manifest<St: Store>(store: &St, repo: &Repo) -> Result<Option<Manifest>, LoadError> {
    read_manifest(store, &repo.key()).await
}

/// The manifest in the store folder `folder`, if there is a readable one.
async fn read_manifest<St: Store>(store: &St, folder: &str) -> Result<Option<Manifest>, LoadError> {
    let path = format!("{folder}/{MANIFEST}");
    let Some(len) = store.len(&path).await? else { return Ok(None) };
    let bytes = store.read_range(&path, 0, len).await?;
    Ok(serde_json::from_slice(&bytes).ok())
}

/// Lists `repo` over the network and pins it to its commit; the stored manifest when the
/// network fails and one is there (offline use).
pub async fn manifest<St: Store, H: Http>(store: &St, http: &H, repo: &Repo) -> Result<Manifest, LoadError> {
    let online = async {
        let files = parse_tree(&http.get(&repo.tree_url()).await?)?;
        let commit = match http.get(&repo.revision_url()).await {
            Ok(b) => serde_json::from_slice::<serde_json::Value>(&b)
                .ok()
                .and_then(|v| v.get("sha").and_then(|s| s.as_str()).map(str::to_string))
                .unwrap_or_else(|| repo.revision.clone()),
            Err(_) => repo.revision.clone(),
        };
        Ok::<_, LoadError>(Manifest { repo: repo.clone(), commit, files })
    };
    match online.await {
        Ok(m) => {
            let stored = stored_manifest(store, repo).await?;
            if stored.as_ref().is_some_and(|s| s.commit != m.commit) {
                // The revision moved: the old files are of another commit.
                store.remove(&repo.key()).await?;
            }
            let path = format!("{}/{MANIFEST}", repo.key());
            store.truncate(&path, 0).await?;
            store.append(&path, &serde_json::to_vec(&m).unwrap_or_default()).await?;
            Ok(m)
        }
        Err(e) => match stored_manifest(store, repo).await? {
            Some(m) => Ok(m),
            None => Err(e),
        },
    }
}

/// Whether `file` of the model is stored whole and verified.
pub async fn is_complete<St: Store>(store: &St, m: &Manifest, file: &str) -> Result<bool, LoadError> {
    let key = m.repo.key();
    let size = m.file(file).map(|f| f.size);
    Ok(store.len(&format!("{key}/{file}{COMPLETE}")).await?.is_some()
        && store.len(&format!("{key}/{file}")).await? == size)
}

/// Downloads the named files of `m` into the store (resuming partial ones, skipping complete
/// ones) with progress; `keep_going` returning false stops between chunks (the part stays).
pub async fn download<St: Store, H: Http>(
    store: &St,
    http: &H,
    m: &Manifest,
    files: &[String],
    progress: &mut dyn FnMut(&DownloadProgress) -> bool,
) -> Result<(), LoadError> {
    let mut wanted = Vec::new();
    for f in files {
        wanted.push(m.file(f).ok_or_else(|| LoadError::NotFound { file: m.repo.file_url(&m.commit, f) })?);
    }
    let bytes_total: u64 = wanted.iter().map(|f| f.size).sum();
    let mut report =
        DownloadProgress { file: String::new(), bytes_done: 0, bytes_total, fetched: 0, stage: "checking".into() };
    for f in wanted {
        report.file = f.path.clone();
        if is_complete(store, m, &f.path).await? {
            report.bytes_done += f.size;
            continue;
        }
        check_path(&f.path)?;
        let done = report.bytes_done;
        let result = download_file(store, http, m, f, &mut report, progress).await;
        store.close().await;
        result?;
        report.bytes_done = done + f.size;
    }
    report.stage = "done".into();
    progress(&report);
    Ok(())
}

/// Refuses file names that would leave the model's folder.
fn check_path(path: &str) -> Result<(), LoadError> {
    if path.split('/').any(|c| c.is_empty() || c == "." || c == "..") || path.contains('\\') {
        return Err(LoadError::Io { file: path.into(), message: "file name escapes the model folder".into() });
    }
    Ok(())
}

async fn download_file<St: Store, H: Http>(
    store: &St,
    http: &H,
    m: &Manifest,
    f: &RepoFile,
    report: &mut DownloadProgress,
    progress: &mut dyn FnMut(&DownloadProgress) -> bool,
) -> Result<(), LoadError> {
    let path = format!("{}/{}", m.repo.key(), f.path);
    let url = m.repo.file_url(&m.commit, &f.path);
    let base = report.bytes_done;
    let mut have = store.len(&path).await?.unwrap_or(0);
    if have > f.size {
        store.truncate(&path, 0).await?;
        have = 0;
    }
    // Resuming: hash what is already there.
    let mut hasher = Sha256::new();
    report.stage = "verifying".into();
    let mut at = 0;
    while at < have {
        let n = (have - at).min(8 << 20);
        hasher.update(store.read_range(&path, at, n).await?);
        at += n;
        report.bytes_done = base + at;
        progress(report);
    }
    report.stage = "downloading".into();
    if have < f.size || f.size == 0 {
        let (status, mut body) = http.get_from(&url, have).await?;
        if have > 0 && status == 200 {
            // The server ignored the range: start over.
            store.truncate(&path, 0).await?;
            hasher = Sha256::new();
            have = 0;
        } else if !(200..300).contains(&status) {
            return Err(LoadError::Io { file: url, message: format!("HTTP {status}") });
        }
        if have == 0 {
            store.truncate(&path, 0).await?;
        }
        while let Some(chunk) = body.next().await? {
            if have + chunk.len() as u64 > f.size {
                store.truncate(&path, 0).await?;
                return Err(LoadError::Io {
                    file: url,
                    message: format!(
                        "the server sent more than the listed {} bytes; the download is discarded",
                        f.size
                    ),
                });
            }
            store.append(&path, &chunk).await?;
            hasher.update(&chunk);
            have += chunk.len() as u64;
            report.fetched += chunk.len() as u64;
            report.bytes_done = base + have;
            if !progress(report) {
                return Err(LoadError::Io { file: url, message: "download stopped".into() });
            }
        }
    }
    if have != f.size {
        return Err(LoadError::Io {
            file: url,
            message: format!(
                "the download ended at {have} of {} bytes (connection lost?); it resumes on retry",
                f.size
            ),
        });
    }
    let digest: String = hasher.finalize().iter().map(|b| format!("{b:02x}")).collect();
    if let Some(want) = &f.sha256 {
        if *want != digest {
            store.remove(&path).await?;
            return Err(LoadError::Io {
                file: url,
                message: format!("SHA-256 {digest} does not match the listed {want}; the file was deleted"),
            });
        }
    }
    store.append(&format!("{path}{COMPLETE}"), digest.as_bytes()).await?;
    Ok(())
}

/// One stored model and how much of it is there.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct StoredModel {
    pub repo: Repo,
    pub commit: String,
    /// Bytes stored (complete and partial files).
    pub bytes: u64,
    /// Files stored whole and verified.
    pub complete_files: Vec<String>,
}

/// Every model in the store.
pub async fn stored_models<St: Store>(store: &St) -> Result<Vec<StoredModel>, LoadError> {
    let mut out = Vec::new();
    for folder in store.folders().await? {
        let Some(m) = read_manifest(store, &folder).await? else { continue };
        let (mut bytes, mut complete_files) = (0, Vec::new());
        for f in &m.files {
            bytes += store.len(&format!("{folder}/{}", f.path)).await?.unwrap_or(0);
            if is_complete(store, &m, &f.path).await? {
                complete_files.push(f.path.clone());
            }
        }
        out.push(StoredModel { repo: m.repo, commit: m.commit, bytes, complete_files });
    }
    Ok(out)
}

/// The complete files of a stored model, as a [`ByteSource`] for the loader: absent or
/// partial files read as not found.
pub struct CachedSource<'a, St: Store> {
    pub store: &'a St,
    pub manifest: Manifest,
}

impl<St: Store> CachedSource<'_, St> {
    async fn stored(&self, file: &str) -> Result<String, LoadError> {
        if !is_complete(self.store, &self.manifest, file).await? {
            return Err(LoadError::NotFound { file: self.describe(file) });
        }
        Ok(format!("{}/{file}", self.manifest.repo.key()))
    }
}

impl<St: Store> ByteSource for CachedSource<'_, St> {
    fn describe(&self, file: &str) -> String {
        format!("{} (cached)", self.manifest.repo.file_url(&self.manifest.commit, file))
    }

    async fn read(&self, file: &str) -> Result<Vec<u8>, LoadError> {
        let path = self.stored(file).await?;
        let len = self.store.len(&path).await?.unwrap_or(0);
        self.store.read_range(&path, 0, len).await
    }

    async fn read_range(&self, file: &str, start: u64, len: u64) -> Result<Vec<u8>, LoadError> {
        let path = self.stored(file).await?;
        self.store.read_range(&path, start, len).await
    }

    async fn size(&self, file: &str) -> Result<Option<u64>, LoadError> {
        let path = self.stored(file).await?;
        self.store.len(&path).await
    }
}

/// A folder on disk as a store (the CLI's cache and the native tests).
#[cfg(not(target_arch = "wasm32"))]
pub struct DirStore(pub std::path::PathBuf);

#[cfg(not(target_arch = "wasm32"))]
impl DirStore {
    fn io(&self, path: &str, e: std::io::Error) -> LoadError {
        LoadError::Io { file: self.0.join(path).display().to_string(), message: e.to_string() }
    }
}

#[cfg(not(target_arch = "wasm32"))]
impl Store for DirStore {
    async fn len(&self, path: &str) -> Result<Option<u64>, LoadError> {
        match std::fs::metadata(self.0.join(path)) {
            Ok(m) => Ok(Some(m.len())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(self.io(path, e)),
        }
    }

    async fn append(&self, path: &str, data: &[u8]) -> Result<(), LoadError> {
        use std::io::Write;
        let full = self.0.join(path);
        if let Some(dir) = full.parent() {
            std::fs::create_dir_all(dir).map_err(|e| self.io(path, e))?;
        }
        let mut f = std::fs::OpenOptions::new().create(true).append(true).open(&full).map_err(|e| self.io(path, e))?;
        f.write_all(data).map_err(|e| self.io(path, e))
    }

    async fn truncate(&self, path: &str, len: u64) -> Result<(), LoadError> {
        let full = self.0.join(path);
        if let Some(dir) = full.parent() {
            std::fs::create_dir_all(dir).map_err(|e| self.io(path, e))?;
        }
        let f = std::fs::OpenOptions::new().create(true).write(true).truncate(false).open(&full);
        f.and_then(|f| f.set_len(len)).map_err(|e| self.io(path, e))
    }

    async fn read_range(&self, path: &str, start: u64, len: u64) -> Result<Vec<u8>, LoadError> {
        crate::load::DirSource(self.0.clone()).read_range(path, start, len).await
    }

    async fn remove(&self, path: &str) -> Result<(), LoadError> {
        let full = self.0.join(path);
        let r = if full.is_dir() { std::fs::remove_dir_all(&full) } else { std::fs::remove_file(&full) };
        match r {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(self.io(path, e)),
            _ => Ok(()),
        }
    }

    async fn folders(&self) -> Result<Vec<String>, LoadError> {
        let Ok(dir) = std::fs::read_dir(&self.0) else { return Ok(Vec::new()) };
        let mut out: Vec<String> = dir
            .filter_map(|e| e.ok())
            .filter(|e| e.path().is_dir())
            .filter_map(|e| e.file_name().into_string().ok())
            .collect();
        out.sort();
        Ok(out)
    }
}

/// Native HTTP with ureq.
#[cfg(not(target_arch = "wasm32"))]
pub struct NativeHttp;

/// A ureq response body read in 1 MiB chunks.
#[cfg(not(target_arch = "wasm32"))]
pub struct NativeBody(Box<dyn std::io::Read + Send>, String);

#[cfg(not(target_arch = "wasm32"))]
impl Body for NativeBody {
    async fn next(&mut self) -> Result<Option<Vec<u8>>, LoadError> {
        let mut buf = vec![0u8; 1 << 20];
        let mut filled = 0;
        while filled < buf.len() {
            match self.0.read(&mut buf[filled..]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) => return Err(LoadError::Io { file: self.1.clone(), message: e.to_string() }),
            }
        }
        buf.truncate(filled);
        Ok((filled > 0).then_some(buf))
    }
}

#[cfg(not(target_arch = "wasm32"))]
impl Http for NativeHttp {
    type Body = NativeBody;

    async fn get(&self, url: &str) -> Result<Vec<u8>, LoadError> {
        let (status, mut body) = self.get_from(url, 0).await?;
        if status != 200 {
            return Err(LoadError::Io { file: url.into(), message: format!("HTTP {status}") });
        }
        let mut out = Vec::new();
        while let Some(c) = body.next().await? {
            out.extend(c);
        }
        Ok(out)
    }

    async fn get_from(&self, url: &str, from: u64) -> Result<(u16, NativeBody), LoadError> {
        let mut req = ureq::get(url);
        if from > 0 {
            req = req.header("Range", &format!("bytes={from}-"));
        }
        match req.call() {
            Ok(r) => {
                let status = r.status().as_u16();
                let reader = r.into_body().into_reader();
                Ok((status, NativeBody(Box::new(reader), url.to_string())))
            }
            Err(ureq::Error::StatusCode(404)) => Err(LoadError::NotFound { file: url.into() }),
            Err(e) => Err(LoadError::Io { file: url.into(), message: e.to_string() }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_hub_tree_listing() {
        let json = br#"[{"type":"directory","oid":"x","size":0,"path":"sub"},
            {"type":"file","oid":"a1","size":1234,"path":"config.json"},
            {"type":"file","oid":"b2","size":135,"path":"model.gguf",
             "lfs":{"oid":"AB12ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12","size":987654321,"pointerSize":135}}]"#;
        let files = parse_tree(json).unwrap();
        assert_eq!(files.len(), 2);
        assert_eq!(files[0], RepoFile { path: "config.json".into(), size: 1234, sha256: None });
        assert_eq!(files[1].size, 987654321);
        assert_eq!(
            files[1].sha256.as_deref(),
            Some("ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12")
        );
        assert!(parse_tree(b"{").is_err());
    }

    #[test]
    fn chooses_the_files_of_a_model() {
        let file = |p: &str, size| RepoFile { path: p.into(), size, sha256: None };
        let m = Manifest {
            repo: Repo::hub("Qwen/Qwen3-VL-2B-Instruct-GGUF"),
            commit: "c".into(),
            files: vec![
                file("README.md", 1),
                file("Qwen3VL-2B-Instruct-Q4_K_M.gguf", 100),
                file("Qwen3VL-2B-Instruct-Q8_0.gguf", 200),
                file("mmproj-Qwen3VL-2B-Instruct-Q8_0.gguf", 30),
                file("mmproj-Qwen3VL-2B-Instruct-F16.gguf", 50),
            ],
        };
        let c = choose_files(&m, Some("q4_k_m")).unwrap();
        assert_eq!(c.weights.as_deref(), Some("Qwen3VL-2B-Instruct-Q4_K_M.gguf"));
        assert_eq!(c.mmproj.as_deref(), Some("mmproj-Qwen3VL-2B-Instruct-F16.gguf"));
        assert_eq!(c.bytes, 150);
        assert!(choose_files(&m, Some("Q2_K")).is_err());
        assert!(choose_files(&m, None).is_err());
        let m = Manifest {
            files: vec![
                file("config.json", 1),
                file("model.safetensors.index.json", 2),
                file("model-00001-of-00002.safetensors", 3),
                file("model-00002-of-00002.safetensors", 4),
                file("tokenizer.json", 5),
            ],
            ..m
        };
        let c = choose_files(&m, None).unwrap();
        assert_eq!(c.files.len(), 5);
        assert_eq!((c.bytes, c.weights), (15, None));
        // A faster-whisper repository: CTranslate2 weights, no safetensors.
        let m = Manifest {
            files: vec![
                file("config.json", 1),
                file("model.bin", 70),
                file("tokenizer.json", 5),
                file("vocabulary.txt", 9),
                file("preprocessor_config.json", 2),
            ],
            ..m
        };
        let c = choose_files(&m, None).unwrap();
        assert_eq!(c.files, ["config.json", "tokenizer.json", "preprocessor_config.json", "model.bin"]);
        assert_eq!(c.bytes, 78);
    }

    #[test]
    fn urls_and_keys_follow_the_hub_layout() {
        let r = Repo::hub("Qwen/Qwen3-VL-2B-Instruct");
        assert_eq!(
            r.file_url("abc", "config.json"),
            "https://huggingface.co/Qwen/Qwen3-VL-2B-Instruct/resolve/abc/config.json"
        );
        assert_eq!(
            r.tree_url(),
            "https://huggingface.co/api/models/Qwen/Qwen3-VL-2B-Instruct/tree/main?recursive=true"
        );
        assert_eq!(r.key(), "Qwen~Qwen3-VL-2B-Instruct@main");
        assert!(check_path("a/../b").is_err() && check_path("/etc").is_err() && check_path("x/y.gguf").is_ok());
    }
}
