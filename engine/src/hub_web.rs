//! The browser's side of [`crate::hub`]: the origin-private file system (OPFS) as the
//! [`Store`], through synchronous access handles (random-access reads and appends, available
//! in dedicated workers), and `fetch` with streamed bodies as the [`Http`].

use std::cell::RefCell;
use std::collections::HashMap;

use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use web_sys::{
    FileSystemDirectoryHandle, FileSystemFileHandle, FileSystemGetDirectoryOptions, FileSystemGetFileOptions,
    FileSystemReadWriteOptions, FileSystemRemoveOptions, FileSystemSyncAccessHandle,
};

use crate::error::LoadError;
use crate::hub::{Body, Http, Store};

/// What a failed storage call says; a full quota gets a message a person can act on.
fn storage_error(path: &str, e: JsValue) -> LoadError {
    let name = e.dyn_ref::<web_sys::DomException>().map(|d| d.name()).unwrap_or_default();
    if name == "QuotaExceededError" {
        return quota_full(path);
    }
    LoadError::Io { file: path.to_string(), message: format!("browser storage: {}", js_message(&e)) }
}

/// The storage quota is used up (a write threw `QuotaExceededError` or, as Chromium's sync
/// access handles do, wrote less than it was given).
fn quota_full(path: &str) -> LoadError {
    LoadError::Io {
        file: path.to_string(),
        message: "the browser's storage for this site is full (quota exceeded): delete cached models in the \
                  storage view or allow more storage, then retry; what was downloaded is kept"
            .into(),
    }
}

fn js_message(e: &JsValue) -> String {
    e.dyn_ref::<js_sys::Error>()
        .map(|e| String::from(e.message()))
        .or_else(|| e.as_string())
        .unwrap_or(format!("{e:?}"))
}

fn is_not_found(e: &JsValue) -> bool {
    e.dyn_ref::<web_sys::DomException>().is_some_and(|d| d.name() == "NotFoundError")
}

/// Another access handle or writable stream holds the file.
fn is_locked(e: &JsValue) -> bool {
    e.dyn_ref::<web_sys::DomException>().is_some_and(|d| d.name() == "NoModificationAllowedError")
}

/// Resolves after `ms` milliseconds (the worker's `setTimeout`).
pub async fn sleep_ms(ms: i32) {
    let promise = js_sys::Promise::new(&mut |resolve, _| {
        if let Ok(scope) = js_sys::global().dyn_into::<web_sys::WorkerGlobalScope>() {
            let _ = scope.set_timeout_with_callback_and_timeout_and_arguments_0(&resolve, ms);
        } else {
            let _ = resolve.call0(&JsValue::NULL);
        }
    });
    let _ = JsFuture::from(promise).await;
}

/// A folder of the origin-private file system.
pub struct OpfsStore {
    root: FileSystemDirectoryHandle,
    /// Open sync access handles by path (the browser allows one per file).
    handles: RefCell<HashMap<String, FileSystemSyncAccessHandle>>,
}

impl OpfsStore {
    /// The folder `name` under the origin's private root (created when absent).
    pub async fn open(name: &str) -> Result<Self, LoadError> {
        let scope: web_sys::WorkerGlobalScope = js_sys::global().dyn_into().map_err(|_| LoadError::Io {
            file: name.into(),
            message: "the model cache works in a worker only".into(),
        })?;
        let storage = scope.navigator().storage();
        let root: FileSystemDirectoryHandle =
            JsFuture::from(storage.get_directory()).await.map_err(|e| storage_error(name, e))?.unchecked_into();
        let opts = FileSystemGetDirectoryOptions::new();
        opts.set_create(true);
        let root = JsFuture::from(root.get_directory_handle_with_options(name, &opts))
            .await
            .map_err(|e| storage_error(name, e))?
            .unchecked_into();
        Ok(OpfsStore { root, handles: RefCell::new(HashMap::new()) })
    }

    /// The folder holding `path` and the file's name; `None` when a folder is missing.
    async fn parent(&self, path: &str, create: bool) -> Result<Option<(FileSystemDirectoryHandle, String)>, LoadError> {
        let mut parts: Vec<&str> = path.split('/').collect();
        let name = parts.pop().unwrap_or_default().to_string();
        let mut dir = self.root.clone();
        for p in parts {
            let opts = FileSystemGetDirectoryOptions::new();
            opts.set_create(create);
            match JsFuture::from(dir.get_directory_handle_with_options(p, &opts)).await {
                Ok(d) => dir = d.unchecked_into(),
                Err(e) if !create && (is_not_found(&e) || e.has_type::<js_sys::TypeError>()) => return Ok(None),
                Err(e) => return Err(storage_error(path, e)),
            }
        }
        Ok(Some((dir, name)))
    }

    async fn handle(&self, path: &str, create: bool) -> Result<Option<FileSystemSyncAccessHandle>, LoadError> {
        if let Some(h) = self.handles.borrow().get(path) {
            return Ok(Some(h.clone()));
        }
        let Some((dir, name)) = self.parent(path, create).await? else { return Ok(None) };
        let opts = FileSystemGetFileOptions::new();
        opts.set_create(create);
        let file: FileSystemFileHandle = match JsFuture::from(dir.get_file_handle_with_options(&name, &opts)).await {
            Ok(f) => f.unchecked_into(),
            Err(e) if !create && is_not_found(&e) => return Ok(None),
            Err(e) => return Err(storage_error(path, e)),
        };
        // A file takes one access handle at a time. Right after a reload the worker of the page
        // that went away may still hold it for a moment (and a second call of ours may be
        // opening it too), so a locked file is waited for, up to about ten seconds.
        let (mut waited_ms, mut wait_ms) = (0, 25);
        let h: FileSystemSyncAccessHandle = loop {
            match JsFuture::from(file.create_sync_access_handle()).await {
                Ok(h) => break h.unchecked_into(),
                Err(e) if is_locked(&e) && waited_ms < 10_000 => {
                    sleep_ms(wait_ms).await;
                    waited_ms += wait_ms;
                    wait_ms = (wait_ms * 2).min(1_000);
                    if let Some(h) = self.handles.borrow().get(path) {
                        return Ok(Some(h.clone()));
                    }
                }
                Err(e) => return Err(storage_error(path, e)),
            }
        };
        self.handles.borrow_mut().insert(path.to_string(), h.clone());
        Ok(Some(h))
    }

    fn close_under(&self, prefix: &str) {
        self.handles.borrow_mut().retain(|p, h| {
            let inside = p == prefix || p.starts_with(&format!("{prefix}/"));
            if inside {
                let _ = h.flush();
                h.close();
            }
            !inside
        });
    }
}

fn at(offset: u64) -> FileSystemReadWriteOptions {
    let o = FileSystemReadWriteOptions::new();
    o.set_at(offset as f64);
    o
}

impl Store for OpfsStore {
    async fn len(&self, path: &str) -> Result<Option<u64>, LoadError> {
        match self.handle(path, false).await? {
            Some(h) => Ok(Some(h.get_size().map_err(|e| storage_error(path, e))? as u64)),
            None => Ok(None),
        }
    }

    async fn append(&self, path: &str, data: &[u8]) -> Result<(), LoadError> {
        let h = self.handle(path, true).await?.ok_or_else(|| LoadError::NotFound { file: path.into() })?;
        let end = h.get_size().map_err(|e| storage_error(path, e))?;
        let wrote = h.write_with_u8_array_and_options(data, &at(end as u64)).map_err(|e| storage_error(path, e))?;
        if wrote as usize != data.len() {
            // A short write leaves a torn tail: cut it off so the part stays consistent.
            let _ = h.truncate_with_f64(end);
            return Err(quota_full(path));
        }
        Ok(())
    }

    async fn truncate(&self, path: &str, len: u64) -> Result<(), LoadError> {
        let h = self.handle(path, true).await?.ok_or_else(|| LoadError::NotFound { file: path.into() })?;
        h.truncate_with_f64(len as f64).map_err(|e| storage_error(path, e))
    }

    async fn read_range(&self, path: &str, start: u64, len: u64) -> Result<Vec<u8>, LoadError> {
        let h = self.handle(path, false).await?.ok_or_else(|| LoadError::NotFound { file: path.into() })?;
        let mut buf = vec![0u8; len as usize];
        let got = h.read_with_u8_array_and_options(&mut buf, &at(start)).map_err(|e| storage_error(path, e))?;
        if (got as u64) < len {
            return Err(LoadError::Io { file: path.into(), message: format!("read {got} of {len} bytes at {start}") });
        }
        Ok(buf)
    }

    async fn remove(&self, path: &str) -> Result<(), LoadError> {
        self.close_under(path);
        let Some((dir, name)) = self.parent(path, false).await? else { return Ok(()) };
        let opts = FileSystemRemoveOptions::new();
        opts.set_recursive(true);
        match JsFuture::from(dir.remove_entry_with_options(&name, &opts)).await {
            Err(e) if !is_not_found(&e) => Err(storage_error(path, e)),
            _ => Ok(()),
        }
    }

    async fn folders(&self) -> Result<Vec<String>, LoadError> {
        let iter = self.root.keys();
        let mut out = Vec::new();
        loop {
            let next = JsFuture::from(iter.next().map_err(|e| storage_error("", e))?)
                .await
                .map_err(|e| storage_error("", e))?;
            let done = js_sys::Reflect::get(&next, &"done".into()).map(|d| d.is_truthy()).unwrap_or(true);
            if done {
                break;
            }
            if let Some(name) = js_sys::Reflect::get(&next, &"value".into()).ok().and_then(|v| v.as_string()) {
                out.push(name);
            }
        }
        out.sort();
        Ok(out)
    }

    async fn close(&self) {
        for (_, h) in self.handles.borrow_mut().drain() {
            let _ = h.flush();
            h.close();
        }
    }
}

/// `fetch` from the worker, bodies read as streams.
pub struct WebHttp;

/// A response body's reader.
pub struct WebBody(web_sys::ReadableStreamDefaultReader, String);

impl Body for WebBody {
    async fn next(&mut self) -> Result<Option<Vec<u8>>, LoadError> {
        let io = |e: JsValue| LoadError::Io { file: self.1.clone(), message: js_message(&e) };
        let r = JsFuture::from(self.0.read()).await.map_err(io)?;
        let done = js_sys::Reflect::get(&r, &"done".into()).map(|d| d.is_truthy()).unwrap_or(true);
        if done {
            return Ok(None);
        }
        let v = js_sys::Reflect::get(&r, &"value".into()).map_err(io)?;
        Ok(Some(js_sys::Uint8Array::new(&v).to_vec()))
    }
}

impl Http for WebHttp {
    type Body = WebBody;

    async fn get(&self, url: &str) -> Result<Vec<u8>, LoadError> {
        crate::load::fetch_bytes(url).await
    }

    async fn get_from(&self, url: &str, from: u64) -> Result<(u16, WebBody), LoadError> {
        let range = (from > 0).then(|| format!("bytes={from}-"));
        let resp = crate::load::web_send(url, "GET", range.as_deref()).await?;
        let status = resp.status();
        let body = resp.body().ok_or_else(|| LoadError::Io { file: url.into(), message: "no response body".into() })?;
        let reader: web_sys::ReadableStreamDefaultReader = body.get_reader().unchecked_into();
        Ok((status, WebBody(reader, url.to_string())))
    }
}
