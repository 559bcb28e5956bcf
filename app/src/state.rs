//! App-wide state and the engine worker handle, provided as context (`provide_app_state` /
//! `use_app_state`). The conversation lives here, on the page: a failed or stopped turn never
//! loses it, and the worker only ever sees copies.

use std::collections::HashMap;

use leptos::prelude::*;
use qwglm_engine::chat::{Message, Part, Role};
use qwglm_engine::generate::SamplingParams;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;

use crate::catalog::{self, CUSTOM_REPO, CUSTOM_URL};
use crate::protocol::{
    DownloadProgress, ErrorKind, Event, GpuMemory, ImageRef, ModelInfo, ModelRole, ModelSource, Outcome, Repo, Request,
    SpeechInfo, StoredModel, TurnStats,
};

/// The models in the browser's cache and the origin's storage use and quota.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct StorageView {
    pub models: Vec<StoredModel>,
    pub usage: Option<f64>,
    pub quota: Option<f64>,
}

/// The default model: Qwen3-VL-2B-Instruct from the Hub.
pub const DEFAULT_MODEL_URL: &str = "https://huggingface.co/Qwen/Qwen3-VL-2B-Instruct/resolve/main";

/// Where the model of a role stands; `I` is what a loaded one reports.
#[derive(Clone, Debug, PartialEq)]
pub enum ModelStatus<I = ModelInfo> {
    Empty,
    /// Fetching a Hub model into the browser's cache: bytes/s over this session's fetch and
    /// the seconds left at that rate.
    Downloading {
        progress: DownloadProgress,
        rate: f64,
        eta_s: Option<f64>,
    },
    Loading {
        bytes_done: u64,
        bytes_total: u64,
        tensor: String,
    },
    Ready(I),
    Failed(String),
}

impl<I> ModelStatus<I> {
    /// Downloading or loading.
    pub fn is_busy(&self) -> bool {
        matches!(self, ModelStatus::Loading { .. } | ModelStatus::Downloading { .. })
    }

    /// The load button's words: `first` until something was loaded or failed.
    pub fn button_label(&self, first: &'static str) -> &'static str {
        match self {
            ModelStatus::Failed(_) => "Retry",
            ModelStatus::Ready(_) => "Reload",
            _ => first,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum EntryState {
    Streaming,
    Done,
    Stopped,
    Failed,
}

/// A picture attached to a message: a file (picked, pasted, dropped) or a captured screen
/// frame (raw RGBA of `rgba` size). `url` shows it; `data` is sent to the worker.
#[derive(Clone)]
pub struct Attachment {
    pub key: u64,
    pub url: String,
    pub data: js_sys::Uint8Array,
    pub rgba: Option<(u32, u32)>,
}

/// One message on screen. Its text is a signal so streaming tokens re-render only it.
#[derive(Clone, Copy)]
pub struct Entry {
    pub key: u64,
    pub role: Role,
    /// Pictures of a user message, shown before its text.
    pub images: StoredValue<Vec<Attachment>, LocalStorage>,
    pub text: RwSignal<String>,
    pub state: RwSignal<EntryState>,
    pub error: RwSignal<Option<String>>,
    pub stats: RwSignal<Option<TurnStats>>,
}

/// User-chosen sampling settings; `None` fields use the model's defaults.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SettingsValues {
    pub temperature: Option<f32>,
    pub max_new_tokens: usize,
    /// Pixel budget of a picture for the model (screen frames are downscaled to it).
    pub max_image_pixels: usize,
    /// Send the message as soon as a spoken turn is transcribed (else leave it to edit).
    pub send_spoken: bool,
    /// Show the words while the user is still speaking.
    pub live_transcript: bool,
    /// End a turn started by a click when the speaker falls silent (voice activity).
    pub auto_end: bool,
    /// The spoken language (`None`: detected by multilingual models).
    pub speech_language: Option<String>,
}

/// The spoken turn being heard: its request id and the text that was in the composer
/// before it (the transcript goes after it).
#[derive(Clone, Debug, PartialEq)]
pub struct Listening {
    pub id: u64,
    pub before: String,
    /// Whether the microphone is still capturing (false once the turn has ended and the
    /// final text is being made).
    pub capturing: bool,
    /// Whether the voice activity detector hears speech now.
    pub speaking: bool,
}

#[derive(Clone, Copy)]
pub struct AppState {
    pub webgpu_available: bool,
    /// The catalogue variant chosen, or [`CUSTOM_URL`] / [`CUSTOM_REPO`].
    pub model_choice: RwSignal<String>,
    /// The Hub (or a local server in its layout) models download from.
    pub endpoint: StoredValue<String>,
    /// A repository (and GGUF tag) named in the address: `?repo=owner/name&gguf=Q4_K_M`
    /// (`&revision=` a branch, tag or commit; `main` by default).
    pub custom_repo: StoredValue<Option<(String, Option<String>)>>,
    /// The storage view's contents, once asked for.
    pub storage: RwSignal<Option<StorageView>>,
    /// Whether the browser granted persistent storage (asked on the first download).
    pub persisted: RwSignal<Option<bool>>,
    /// When each role's download session started and the bytes fetched then (for the rate).
    download_clock: StoredValue<HashMap<ModelRole, (f64, u64)>>,
    pub model_url: RwSignal<String>,
    pub max_context: RwSignal<usize>,
    pub status: RwSignal<ModelStatus>,
    /// The speech recognizer chosen (a [`catalog::SPEECH_VARIANTS`] id or [`CUSTOM_URL`]),
    /// its URL when given by address, and its status.
    pub speech_choice: RwSignal<String>,
    pub speech_url: RwSignal<String>,
    pub speech_status: RwSignal<ModelStatus<SpeechInfo>>,
    /// GPU memory the worker's models hold, as it last reported.
    pub memory: RwSignal<Option<GpuMemory>>,
    /// The message being written (typed, or spoken into the microphone).
    pub draft: RwSignal<String>,
    pub listening: RwSignal<Option<Listening>>,
    /// The microphone capture while a turn is heard.
    pub mic: StoredValue<Option<crate::components::voice::Mic>, LocalStorage>,
    /// Whether the microphone button is held down (push-to-talk: silence does not end it).
    pub mic_held: StoredValue<bool>,
    /// A note about the microphone (refused, missing, nothing heard).
    pub voice_notice: RwSignal<Option<String>>,
    pub entries: RwSignal<Vec<Entry>>,
    /// The chat request running now and the entry it streams into.
    pub running: RwSignal<Option<(u64, u64)>>,
    pub settings: RwSignal<SettingsValues>,
    pub engine_error: RwSignal<Option<String>>,
    /// Pictures waiting in the composer for the next message.
    pub pending: RwSignal<Vec<Attachment>, LocalStorage>,
    /// The shared screen, while sharing.
    pub screen: RwSignal<Option<web_sys::MediaStream>, LocalStorage>,
    /// Send a fresh frame of the shared screen with every message.
    pub auto_capture: RwSignal<bool>,
    /// A note about screen sharing (denied, ended, no frame yet).
    pub screen_notice: RwSignal<Option<String>>,
    worker: StoredValue<Option<web_sys::Worker>, LocalStorage>,
    /// Requests waiting for the worker's `Started` (JSON and buffers), and whether it came.
    outbox: StoredValue<Vec<(String, Vec<js_sys::Uint8Array>)>, LocalStorage>,
    worker_started: StoredValue<bool>,
    next_id: StoredValue<u64>,
    /// Which request id is a load of which role, so its Done/Error updates that status.
    pending_loads: StoredValue<HashMap<u64, ModelRole>>,
}

pub fn use_app_state() -> AppState {
    expect_context::<AppState>()
}

fn has_webgpu() -> bool {
    web_sys::window()
        .and_then(|w| js_sys::Reflect::get(&w.navigator(), &JsValue::from_str("gpu")).ok())
        .is_some_and(|g| !g.is_undefined() && !g.is_null())
}

/// `?model=<base URL>` overrides the default model.
fn url_param(name: &str) -> Option<String> {
    let search = web_sys::window()?.location().search().ok()?;
    web_sys::UrlSearchParams::new_with_str(&search).ok()?.get(name)
}

pub fn provide_app_state() {
    let custom_repo = url_param("repo").map(|r| (r, url_param("gguf")));
    let choice = if custom_repo.is_some() {
        CUSTOM_REPO.to_string()
    } else if url_param("model").is_some() {
        CUSTOM_URL.to_string()
    } else {
        catalog::VARIANTS[0].id.to_string()
    };
    let st = AppState {
        webgpu_available: has_webgpu(),
        model_choice: RwSignal::new(choice),
        endpoint: StoredValue::new(url_param("endpoint").unwrap_or_else(|| "https://huggingface.co".into())),
        custom_repo: StoredValue::new(custom_repo),
        storage: RwSignal::new(None),
        persisted: RwSignal::new(None),
        download_clock: StoredValue::new(HashMap::new()),
        model_url: RwSignal::new(url_param("model").unwrap_or_else(|| DEFAULT_MODEL_URL.to_string())),
        max_context: RwSignal::new(4096),
        status: RwSignal::new(ModelStatus::Empty),
        speech_choice: RwSignal::new(if url_param("speech").is_some() {
            CUSTOM_URL.to_string()
        } else {
            catalog::SPEECH_VARIANTS[0].id.to_string()
        }),
        speech_url: RwSignal::new(url_param("speech").unwrap_or_default()),
        speech_status: RwSignal::new(ModelStatus::Empty),
        memory: RwSignal::new(None),
        draft: RwSignal::new(String::new()),
        listening: RwSignal::new(None),
        mic: StoredValue::new_local(None),
        mic_held: StoredValue::new(false),
        voice_notice: RwSignal::new(None),
        entries: RwSignal::new(Vec::new()),
        running: RwSignal::new(None),
        settings: RwSignal::new(SettingsValues {
            temperature: None,
            max_new_tokens: 512,
            max_image_pixels: 1_003_520,
            send_spoken: true,
            live_transcript: true,
            auto_end: true,
            speech_language: None,
        }),
        engine_error: RwSignal::new(None),
        pending: RwSignal::new_local(Vec::new()),
        screen: RwSignal::new_local(None),
        auto_capture: RwSignal::new(true),
        screen_notice: RwSignal::new(None),
        worker: StoredValue::new_local(None),
        outbox: StoredValue::new_local(Vec::new()),
        worker_started: StoredValue::new(false),
        next_id: StoredValue::new(1),
        pending_loads: StoredValue::new(HashMap::new()),
    };
    provide_context(st);
    if st.webgpu_available {
        st.spawn_worker();
        if url_param("autoload").is_some() {
            st.load();
        }
    }
}

impl AppState {
    fn spawn_worker(self) {
        let opts = web_sys::WorkerOptions::new();
        opts.set_type(web_sys::WorkerType::Module);
        let worker = match web_sys::Worker::new_with_options("./worker.js", &opts) {
            Ok(w) => w,
            Err(e) => {
                self.engine_error.set(Some(format!("could not start the engine worker: {e:?}")));
                return;
            }
        };
        let onmessage = Closure::<dyn FnMut(web_sys::MessageEvent)>::new(move |ev: web_sys::MessageEvent| {
            match ev.data().as_string().map(|s| serde_json::from_str::<Event>(&s)) {
                Some(Ok(e)) => self.on_event(e),
                _ => log::error!("unreadable event from the worker"),
            }
        });
        worker.set_onmessage(Some(onmessage.as_ref().unchecked_ref()));
        onmessage.forget();
        // A crashed worker (a panic aborts the wasm instance) must not leave the page hanging.
        let onerror = Closure::<dyn FnMut(web_sys::ErrorEvent)>::new(move |ev: web_sys::ErrorEvent| {
            let msg = format!("the engine stopped: {}", ev.message());
            self.engine_error.set(Some(msg.clone()));
            self.fail_running(&msg);
            if self.listening.get_untracked().is_some() {
                crate::components::voice::turn_failed(self, &msg);
            }
            if !matches!(self.speech_status.get_untracked(), ModelStatus::Empty) {
                self.speech_status.set(ModelStatus::Failed(msg.clone()));
            }
            self.memory.set(None);
            self.status.set(ModelStatus::Failed(msg));
            self.worker.set_value(None);
            self.worker_started.set_value(false);
            self.spawn_worker();
        });
        worker.set_onerror(Some(onerror.as_ref().unchecked_ref()));
        onerror.forget();
        self.worker.set_value(Some(worker));
    }

    pub(crate) fn send(self, make: impl FnOnce(u64) -> Request) -> Option<u64> {
        self.send_with(Vec::new(), make)
    }

    /// Sends a request with buffers that travel beside it as transferables.
    pub(crate) fn send_with(self, buffers: Vec<js_sys::Uint8Array>, make: impl FnOnce(u64) -> Request) -> Option<u64> {
        let id = self.next_id.get_value();
        self.next_id.set_value(id + 1);
        let req = make(id);
        let json = serde_json::to_string(&req).ok()?;
        if !self.worker_started.get_value() {
            self.outbox.update_value(|q| q.push((json, buffers)));
            return Some(id);
        }
        self.post(&json, &buffers).then_some(id)
    }

    fn post(self, json: &str, buffers: &[js_sys::Uint8Array]) -> bool {
        let msg = js_sys::Object::new();
        let list = js_sys::Array::new();
        let transfer = js_sys::Array::new();
        for b in buffers {
            // A copy moves to the worker; the page keeps its own for the next turns.
            let copy = b.slice(0, b.length());
            transfer.push(&copy.buffer());
            list.push(&copy);
        }
        let _ = js_sys::Reflect::set(&msg, &JsValue::from_str("json"), &JsValue::from_str(json));
        let _ = js_sys::Reflect::set(&msg, &JsValue::from_str("buffers"), &list);
        let sent = self.worker.with_value(|w| w.as_ref().map(|w| w.post_message_with_transfer(&msg, &transfer)));
        let ok = matches!(sent, Some(Ok(())));
        if !ok {
            self.engine_error.set(Some("the engine worker is not running".into()));
        }
        ok
    }

    /// The source of the chosen model.
    fn source(self) -> Option<ModelSource> {
        let choice = self.model_choice.get_untracked();
        let hub =
            |repo: &str| Repo { endpoint: self.endpoint.get_value(), repo: repo.to_string(), revision: "main".into() };
        if choice == CUSTOM_URL {
            return Some(ModelSource::Url { base_url: self.model_url.get_untracked().trim().to_string() });
        }
        if choice == CUSTOM_REPO {
            let (repo, gguf) = self.custom_repo.get_value()?;
            return Some(ModelSource::Hub { repo: hub(&repo), gguf, quantize: None });
        }
        let v = catalog::variant(&choice)?;
        Some(ModelSource::Hub {
            repo: hub(v.repo),
            gguf: v.gguf.map(str::to_string),
            quantize: v.quantize.map(str::to_string),
        })
    }

    /// Loads the chosen model (downloading it into the browser's cache first when it comes
    /// from the Hub).
    pub fn load(self) {
        let Some(source) = self.source() else { return };
        if matches!(source, ModelSource::Hub { .. }) {
            self.request_persist();
        }
        let max_context = self.max_context.get_untracked();
        self.download_clock.update_value(|c| {
            c.remove(&ModelRole::Chat);
        });
        self.status.set(ModelStatus::Loading { bytes_done: 0, bytes_total: 0, tensor: String::new() });
        if let Some(id) = self.send(|id| Request::Load { id, role: ModelRole::Chat, source, max_context }) {
            self.pending_loads.update_value(|m| {
                m.insert(id, ModelRole::Chat);
            });
        }
    }

    /// Loads the chosen speech recognizer beside the chat model.
    pub fn load_speech(self) {
        let choice = self.speech_choice.get_untracked();
        let source = if choice == CUSTOM_URL {
            ModelSource::Url { base_url: self.speech_url.get_untracked().trim().to_string() }
        } else {
            let Some(v) = catalog::speech_variant(&choice) else { return };
            self.request_persist();
            ModelSource::Hub {
                repo: Repo { endpoint: self.endpoint.get_value(), repo: v.repo.to_string(), revision: "main".into() },
                gguf: None,
                quantize: None,
            }
        };
        self.download_clock.update_value(|c| {
            c.remove(&ModelRole::Speech);
        });
        self.speech_status.set(ModelStatus::Loading { bytes_done: 0, bytes_total: 0, tensor: String::new() });
        let max_context = 0;
        if let Some(id) = self.send(|id| Request::Load { id, role: ModelRole::Speech, source, max_context }) {
            self.pending_loads.update_value(|m| {
                m.insert(id, ModelRole::Speech);
            });
        }
    }

    /// Asks the browser to keep the model cache under storage pressure
    /// (`navigator.storage.persist()`).
    fn request_persist(self) {
        if self.persisted.get_untracked() == Some(true) {
            return;
        }
        let Some(promise) = web_sys::window().and_then(|w| w.navigator().storage().persist().ok()) else { return };
        let persisted = self.persisted;
        wasm_bindgen_futures::spawn_local(async move {
            let granted = wasm_bindgen_futures::JsFuture::from(promise).await.map(|v| v.is_truthy()).unwrap_or(false);
            persisted.set(Some(granted));
        });
    }

    /// Asks the worker for the cached models.
    pub fn refresh_storage(self) {
        self.send(|id| Request::Storage { id });
    }

    /// Deletes a cached model (the view refreshes when the worker answers).
    pub fn delete_stored(self, repo: Repo) {
        self.send(|id| Request::DeleteStored { id, repo });
    }

    /// Appends the user's message with the pictures waiting in the composer (and a fresh
    /// frame of the shared screen when auto-capture is on) and asks for a reply.
    pub fn send_message(self, text: String) {
        if self.running.get_untracked().is_some() {
            return;
        }
        let mut images = self.pending.get_untracked();
        if self.screen.with_untracked(|s| s.is_some()) && self.auto_capture.get_untracked() {
            match crate::components::screen_share::capture_frame(self) {
                Ok(frame) => images.push(frame),
                Err(e) => {
                    self.screen_notice.set(Some(e));
                    return;
                }
            }
        }
        if text.trim().is_empty() && images.is_empty() {
            return;
        }
        self.pending.set(Vec::new());
        let e = self.push_entry(Role::User, text, EntryState::Done);
        e.images.set_value(images);
        self.request_reply();
    }

    /// A key for a new picture.
    pub fn next_key(self) -> u64 {
        let key = self.next_id.get_value();
        self.next_id.set_value(key + 1);
        key
    }

    /// Asks for a reply to the conversation as it stands (also a retry after a failure).
    pub fn request_reply(self) {
        // Failed replies are not part of the conversation the model sees.
        self.entries.update(|v| v.retain(|e| e.state.get_untracked() != EntryState::Failed));
        let (messages, images) = self.conversation();
        let buffers: Vec<js_sys::Uint8Array> = images.iter().map(|a| a.data.clone()).collect();
        let images: Vec<ImageRef> = images.iter().map(|a| ImageRef { key: a.key, rgba: a.rgba }).collect();
        let entry = self.push_entry(Role::Assistant, String::new(), EntryState::Streaming);
        let s = self.settings.get_untracked();
        let defaults = match self.status.get_untracked() {
            ModelStatus::Ready(info) => info.defaults,
            _ => SamplingParams::default(),
        };
        let params = SamplingParams {
            temperature: s.temperature.unwrap_or(defaults.temperature),
            max_new_tokens: s.max_new_tokens,
            // A fresh seed per turn: the same question may get another sampled answer.
            seed: (js_sys::Math::random() * 9_007_199_254_740_992.0) as u64,
            ..defaults
        };
        let max_pixels = Some(s.max_image_pixels);
        match self.send_with(buffers, |id| Request::Chat { id, messages, images, max_pixels, params: Some(params) }) {
            Some(id) => self.running.set(Some((id, entry.key))),
            None => {
                entry.state.set(EntryState::Failed);
                entry.error.set(Some("the engine is not running".into()));
            }
        }
    }

    pub fn stop(self) {
        if let Some((target, _)) = self.running.get_untracked() {
            self.send(|id| Request::Cancel { id, target });
        }
    }

    /// The messages the model should see (everything but failed replies and empty stubs),
    /// and their pictures in order.
    fn conversation(self) -> (Vec<Message>, Vec<Attachment>) {
        let mut pictures = Vec::new();
        let messages = self
            .entries
            .get_untracked()
            .iter()
            .filter(|e| e.state.get_untracked() != EntryState::Failed)
            .filter(|e| !(e.role == Role::Assistant && e.text.get_untracked().is_empty()))
            .map(|e| {
                let images = e.images.get_value();
                let mut content: Vec<Part> = images.iter().map(|_| Part::Image {}).collect();
                pictures.extend(images);
                content.push(Part::Text { text: e.text.get_untracked() });
                Message { role: e.role, content }
            })
            .collect();
        (messages, pictures)
    }

    fn push_entry(self, role: Role, text: String, state: EntryState) -> Entry {
        let key = self.next_id.get_value();
        self.next_id.set_value(key + 1);
        let e = Entry {
            key,
            role,
            images: StoredValue::new_local(Vec::new()),
            text: RwSignal::new(text),
            state: RwSignal::new(state),
            error: RwSignal::new(None),
            stats: RwSignal::new(None),
        };
        self.entries.update(|v| v.push(e));
        e
    }

    /// The role a pending load request is for.
    fn load_role(self, id: u64) -> Option<ModelRole> {
        self.pending_loads.with_value(|m| m.get(&id).copied())
    }

    /// Forgets a finished load, returning its role.
    fn take_load(self, id: u64) -> Option<ModelRole> {
        self.pending_loads.try_update_value(|m| m.remove(&id)).flatten()
    }

    fn running_entry(self, id: u64) -> Option<Entry> {
        let (rid, key) = self.running.get_untracked()?;
        (rid == id).then(|| self.entries.get_untracked().into_iter().find(|e| e.key == key)).flatten()
    }

    fn fail_running(self, msg: &str) {
        if let Some((id, _)) = self.running.get_untracked() {
            if let Some(e) = self.running_entry(id) {
                e.state.set(EntryState::Failed);
                e.error.set(Some(msg.to_string()));
            }
        }
        self.running.set(None);
    }

    fn on_event(self, ev: Event) {
        match ev {
            Event::Started => {
                self.worker_started.set_value(true);
                for (json, buffers) in self.outbox.try_update_value(std::mem::take).unwrap_or_default() {
                    self.post(&json, &buffers);
                }
            }
            Event::Progress { id, bytes_done, bytes_total, tensor } => match self.load_role(id) {
                Some(ModelRole::Chat) => self.status.set(ModelStatus::Loading { bytes_done, bytes_total, tensor }),
                Some(ModelRole::Speech) => {
                    self.speech_status.set(ModelStatus::Loading { bytes_done, bytes_total, tensor })
                }
                None => {}
            },
            Event::Download { id, progress } => {
                let Some(role) = self.load_role(id) else { return };
                let now = js_sys::Date::now();
                let (t0, f0) =
                    self.download_clock.with_value(|c| c.get(&role).copied()).unwrap_or((now, progress.fetched));
                self.download_clock.update_value(|c| {
                    c.insert(role, (t0, f0));
                });
                let secs = (now - t0) / 1000.0;
                let rate = if secs > 0.5 { (progress.fetched - f0) as f64 / secs } else { 0.0 };
                let left = progress.bytes_total.saturating_sub(progress.bytes_done) as f64;
                let eta_s = (rate > 0.0).then(|| left / rate);
                match role {
                    ModelRole::Chat => self.status.set(ModelStatus::Downloading { progress, rate, eta_s }),
                    ModelRole::Speech => self.speech_status.set(ModelStatus::Downloading { progress, rate, eta_s }),
                }
            }
            Event::Partial { id, text } => crate::components::voice::partial(self, id, &text),
            Event::Voice { id, speaking } => crate::components::voice::voice(self, id, speaking),
            Event::Stored { models, usage, quota, .. } => {
                self.storage.set(Some(StorageView { models, usage, quota }));
            }
            Event::Token { id, text } => {
                if let Some(e) = self.running_entry(id) {
                    e.text.update(|t| t.push_str(&text));
                }
            }
            Event::Done { id, outcome: Outcome { model, stats, speech, transcript, memory } } => {
                if memory.is_some() {
                    self.memory.set(memory);
                }
                if let Some(role) = self.take_load(id) {
                    match (role, model, speech) {
                        (ModelRole::Chat, Some(info), _) => self.status.set(ModelStatus::Ready(info)),
                        (ModelRole::Speech, _, Some(info)) => self.speech_status.set(ModelStatus::Ready(info)),
                        _ => {}
                    }
                } else if crate::components::voice::is_turn(self, id) {
                    crate::components::voice::heard(self, transcript);
                } else if let Some(e) = self.running_entry(id) {
                    let stopped = stats.as_ref().is_some_and(|s| s.stop == "cancelled");
                    e.state.set(if stopped { EntryState::Stopped } else { EntryState::Done });
                    e.stats.set(stats);
                    self.running.set(None);
                }
            }
            Event::Error { id, kind, message } => {
                if let Some(role) = self.take_load(id) {
                    match role {
                        ModelRole::Chat => self.status.set(ModelStatus::Failed(message)),
                        ModelRole::Speech => self.speech_status.set(ModelStatus::Failed(message)),
                    }
                } else if crate::components::voice::is_turn(self, id) {
                    crate::components::voice::turn_failed(self, &message);
                    if kind == ErrorKind::NoGpu {
                        self.speech_status.set(ModelStatus::Failed(message));
                    }
                } else if self.running_entry(id).is_some() {
                    self.fail_running(&message);
                    if kind == ErrorKind::NoGpu {
                        self.status.set(ModelStatus::Failed(message));
                    }
                } else {
                    self.engine_error.set(Some(message));
                }
            }
        }
    }
}
