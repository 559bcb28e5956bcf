//! `qwglm serve`: a small static file server for the built site and for model folders in the
//! Hub's layout: `/models/<repo>/resolve/<revision>/<file>` maps to `<models>/<repo>/<file>`.
//! It answers `Range` requests (206 with `Content-Range`), as the Hub does, so the engine's
//! streaming loader can be tested against it; it binds to loopback by default.

use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use sha2::{Digest, Sha256};

use anyhow::{Context, Result};
use tiny_http::{Header, Method, Request, Response, Server, StatusCode};

#[derive(clap::Args)]
pub struct Args {
    /// The built site (index.html, wasm, js).
    #[arg(long, default_value = "dist")]
    site: PathBuf,
    /// Folder of model folders served under /models/<name>/resolve/<revision>/.
    #[arg(long)]
    models: Option<PathBuf>,
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    #[arg(long, default_value_t = 8080)]
    port: u16,
    /// Send model files no faster than this many bytes per second (to test interrupted
    /// downloads); 0 for no limit.
    #[arg(long, default_value_t = 0)]
    rate: u64,
}

pub fn run(a: Args) -> Result<()> {
    let addr = format!("{}:{}", a.host, a.port);
    let server =
        Server::http(&addr).map_err(|e| anyhow::anyhow!("{e}")).with_context(|| format!("listening on {addr}"))?;
    eprintln!("serving {} on http://{addr}/", a.site.display());
    if let Some(m) = &a.models {
        eprintln!("models from {} at http://{addr}/models/<name>/resolve/main/", m.display());
    }
    let server = std::sync::Arc::new(server);
    let hashes = Hashes::default();
    let workers: Vec<_> = (0..4)
        .map(|_| {
            let server = server.clone();
            let site = a.site.clone();
            let models = a.models.clone();
            let rate = a.rate;
            let hashes = hashes.clone();
            std::thread::spawn(move || {
                for req in server.incoming_requests() {
                    if let Some(json) = models.as_deref().and_then(|m| api(m, req.url(), &hashes)) {
                        let cors = header("Access-Control-Allow-Origin", "*");
                        let ctype = header("Content-Type", "application/json");
                        let _ = req.respond(Response::from_string(json).with_header(cors).with_header(ctype));
                        continue;
                    }
                    let model_file = req.url().starts_with("/models/");
                    let path = resolve(&site, models.as_deref(), req.url());
                    if let Err(e) = respond(req, path, if model_file { rate } else { 0 }) {
                        log::warn!("serve: {e}");
                    }
                }
            })
        })
        .collect();
    for w in workers {
        let _ = w.join();
    }
    Ok(())
}

/// The file a URL names, or None when it falls outside the served folders.
fn resolve(site: &Path, models: Option<&Path>, url: &str) -> Option<PathBuf> {
    let path = url.split(['?', '#']).next().unwrap_or("/");
    let path = percent_decode(path)?;
    if let Some(rest) = path.strip_prefix("/models/") {
        let (repo, file) = rest.split_once("/resolve/")?;
        let (_revision, file) = file.split_once('/')?;
        return safe_join(models?, &format!("{repo}/{file}"));
    }
    let rel = path.trim_start_matches('/');
    let rel = if rel.is_empty() { "index.html" } else { rel };
    safe_join(site, rel)
}

fn safe_join(root: &Path, rel: &str) -> Option<PathBuf> {
    let rel = Path::new(rel);
    if rel.components().any(|c| !matches!(c, Component::Normal(_))) {
        return None;
    }
    Some(root.join(rel))
}

fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

fn content_type(p: &Path) -> &'static str {
    match p.extension().and_then(|e| e.to_str()).unwrap_or("") {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript",
        "wasm" => "application/wasm",
        "css" => "text/css",
        "json" => "application/json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "wav" => "audio/wav",
        _ => "application/octet-stream",
    }
}

fn header(k: &str, v: &str) -> Header {
    Header::from_bytes(k.as_bytes(), v.as_bytes()).expect("ASCII header")
}

/// `bytes=a-b`, `bytes=a-` or `bytes=-n` against a file of `size` bytes.
fn parse_range(v: &str, size: u64) -> Option<(u64, u64)> {
    let spec = v.strip_prefix("bytes=")?;
    let (a, b) = spec.split_once('-')?;
    let (start, end) = match (a.trim(), b.trim()) {
        ("", n) => {
            let n: u64 = n.parse().ok()?;
            (size.saturating_sub(n), size.checked_sub(1)?)
        }
        (a, "") => (a.parse().ok()?, size.checked_sub(1)?),
        (a, b) => (a.parse().ok()?, b.parse::<u64>().ok()?.min(size.checked_sub(1)?)),
    };
    (start <= end && end < size).then_some((start, end))
}

/// SHA-256 of the LFS-like files served, by path, size and modification time.
type Hashes = Arc<Mutex<HashMap<(PathBuf, u64, SystemTime), String>>>;

/// The Hub's API for the model folders: `/models/api/models/<repo>/tree/<rev>` lists the
/// folder's files with sizes (and `lfs.oid`, the SHA-256, for weight files, as the Hub lists
/// LFS files); `/models/api/models/<repo>/revision/<rev>` gives a commit id that changes
/// whenever a file does.
fn api(models: &Path, url: &str, hashes: &Hashes) -> Option<String> {
    let path = percent_decode(url.split(['?', '#']).next()?)?;
    let rest = path.strip_prefix("/models/api/models/")?;
    let (repo, kind) = if let Some((repo, _rev)) = rest.rsplit_once("/tree/") {
        (repo, "tree")
    } else {
        (rest.rsplit_once("/revision/")?.0, "revision")
    };
    let root = safe_join(models, repo)?;
    let mut files = Vec::new();
    list(&root, &root, &mut files);
    files.sort();
    let mut entries = Vec::new();
    let mut commit = Sha256::new();
    for rel in files {
        let full = root.join(&rel);
        let meta = std::fs::metadata(&full).ok()?;
        let size = meta.len();
        let lfs = matches!(full.extension().and_then(|e| e.to_str()), Some("safetensors" | "gguf" | "bin" | "onnx"));
        let mut entry = serde_json::json!({"type": "file", "path": rel, "size": size, "oid": ""});
        if lfs {
            let key = (full.clone(), size, meta.modified().ok()?);
            let cached = hashes.lock().ok()?.get(&key).cloned();
            let sha = match cached {
                Some(h) => h,
                None => {
                    let h = file_sha256(&full).ok()?;
                    hashes.lock().ok()?.insert(key, h.clone());
                    h
                }
            };
            entry["lfs"] = serde_json::json!({"oid": sha, "size": size, "pointerSize": 134});
        }
        commit.update(format!("{rel}:{size}:{:?};", meta.modified().ok()).as_bytes());
        entries.push(entry);
    }
    Some(match kind {
        "tree" => serde_json::Value::Array(entries).to_string(),
        _ => {
            let sha: String = commit.finalize().iter().take(20).map(|b| format!("{b:02x}")).collect();
            serde_json::json!({"id": repo, "sha": sha}).to_string()
        }
    })
}

/// Relative paths of the files under `dir`.
fn list(root: &Path, dir: &Path, out: &mut Vec<String>) {
    let Ok(rd) = std::fs::read_dir(dir) else { return };
    for e in rd.flatten() {
        let p = e.path();
        if p.is_dir() {
            list(root, &p, out);
        } else if let Some(rel) = p.strip_prefix(root).ok().and_then(|r| r.to_str()) {
            out.push(rel.replace('\\', "/"));
        }
    }
}

fn file_sha256(path: &Path) -> std::io::Result<String> {
    let mut f = File::open(path)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

/// A reader that keeps to `rate` bytes per second.
struct Throttled<R> {
    inner: R,
    rate: u64,
    sent: u64,
    start: Instant,
}

impl<R: Read> Read for Throttled<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let due = Duration::from_secs_f64(self.sent as f64 / self.rate as f64);
        if let Some(wait) = due.checked_sub(self.start.elapsed()) {
            std::thread::sleep(wait);
        }
        let n = buf.len().min(64 << 10);
        let n = self.inner.read(&mut buf[..n])?;
        self.sent += n as u64;
        Ok(n)
    }
}

/// A file body, throttled when `rate` is set.
fn body<R: Read + Send + 'static>(r: R, rate: u64) -> Box<dyn Read + Send> {
    if rate == 0 {
        Box::new(r)
    } else {
        Box::new(Throttled { inner: r, rate, sent: 0, start: Instant::now() })
    }
}

fn respond(req: Request, path: Option<PathBuf>, rate: u64) -> std::io::Result<()> {
    let cors = header("Access-Control-Allow-Origin", "*");
    let file = path.as_ref().filter(|p| p.is_file()).and_then(|p| File::open(p).ok());
    let (Some(path), Some(mut file)) = (path, file) else {
        return req.respond(Response::from_string("not found").with_status_code(404).with_header(cors));
    };
    if !matches!(req.method(), Method::Get | Method::Head) {
        return req.respond(Response::from_string("method not allowed").with_status_code(405));
    }
    let size = file.metadata()?.len();
    let range = req.headers().iter().find(|h| h.field.equiv("Range")).map(|h| h.value.as_str().to_string());
    let ctype = header("Content-Type", content_type(&path));
    let accept = header("Accept-Ranges", "bytes");
    let expose = header("Access-Control-Expose-Headers", "Content-Range, Content-Length, Accept-Ranges");
    match range {
        Some(r) => match parse_range(&r, size) {
            Some((start, end)) => {
                file.seek(SeekFrom::Start(start))?;
                let len = end - start + 1;
                let body = body(file.take(len), rate);
                let resp = Response::new(
                    StatusCode(206),
                    vec![ctype, accept, cors, expose, header("Content-Range", &format!("bytes {start}-{end}/{size}"))],
                    body,
                    Some(len as usize),
                    None,
                )
                .with_chunked_threshold(usize::MAX);
                req.respond(resp)
            }
            None => req.respond(
                Response::from_string("range not satisfiable")
                    .with_status_code(416)
                    .with_header(header("Content-Range", &format!("bytes */{size}")))
                    .with_header(cors),
            ),
        },
        // Always a Content-Length (never chunked), so HEAD tells the size as the Hub does.
        None => req.respond(
            Response::new(
                StatusCode(200),
                vec![ctype, accept, cors, expose],
                body(file, rate),
                Some(size as usize),
                None,
            )
            .with_chunked_threshold(usize::MAX),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        assert_eq!(parse_range("bytes=0-9", 100), Some((0, 9)));
        assert_eq!(parse_range("bytes=90-", 100), Some((90, 99)));
        assert_eq!(parse_range("bytes=-10", 100), Some((90, 99)));
        assert_eq!(parse_range("bytes=95-200", 100), Some((95, 99)));
        assert_eq!(parse_range("bytes=100-", 100), None);
        assert_eq!(parse_range("bytes=5-1", 100), None);
        assert_eq!(parse_range("items=0-1", 100), None);
    }

    #[test]
    fn paths_stay_inside() {
        let site = Path::new("/site");
        let models = Some(Path::new("/m"));
        assert_eq!(resolve(site, models, "/"), Some(PathBuf::from("/site/index.html")));
        assert_eq!(resolve(site, models, "/app.js?x=1"), Some(PathBuf::from("/site/app.js")));
        assert_eq!(
            resolve(site, models, "/models/qwen3_vl/resolve/main/config.json"),
            Some(PathBuf::from("/m/qwen3_vl/config.json"))
        );
        assert_eq!(resolve(site, models, "/models/Qwen/X/resolve/abc/a.json"), Some(PathBuf::from("/m/Qwen/X/a.json")));
        assert_eq!(resolve(site, models, "/../etc/passwd"), None);
        assert_eq!(resolve(site, models, "/%2e%2e/etc/passwd"), None);
        assert_eq!(resolve(site, models, "/models/x/resolve/main/../../secret"), None);
        assert_eq!(resolve(site, None, "/models/x/resolve/main/config.json"), None);
    }
}
