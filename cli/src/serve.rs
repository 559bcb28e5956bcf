//! `qwglm serve`: a small static file server for the built site and for model folders in the
//! Hub's layout: `/models/<repo>/resolve/<revision>/<file>` maps to `<models>/<repo>/<file>`.
//! It answers `Range` requests (206 with `Content-Range`), as the Hub does, so the engine's
//! streaming loader can be tested against it; it binds to loopback by default.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Component, Path, PathBuf};

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
    let workers: Vec<_> = (0..4)
        .map(|_| {
            let server = server.clone();
            let site = a.site.clone();
            let models = a.models.clone();
            std::thread::spawn(move || {
                for req in server.incoming_requests() {
                    let path = resolve(&site, models.as_deref(), req.url());
                    if let Err(e) = respond(req, path) {
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

fn respond(req: Request, path: Option<PathBuf>) -> std::io::Result<()> {
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
                let body = file.take(len);
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
            Response::new(StatusCode(200), vec![ctype, accept, cors, expose], file, Some(size as usize), None)
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
