//! The engine worker: owns the GPU device, one model per role (the chat model with the
//! conversation's KV cache, the speech recognizer) and the spoken turn being heard, and answers
//! [`Request`]s from the page. Nothing here panics on bad input; every request ends in one
//! `Done` or `Error` (an audio chunk only when it fails).

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;

use qwglm_engine::generate::SamplingParams;
use qwglm_engine::load::HttpSource;
use qwglm_engine::pipeline::{ChatModel, LoadOptions, Session};
use qwglm_engine::{EngineError, Gpu};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;

use qwglm_engine::prompt::ImageInput;
use qwglm_vision::{DecodeLimits, RgbImage};

use qwglm_audio::vad::{SileroVad, TurnConfig, VoiceActivity, VoiceEvent};
use qwglm_engine::hub::Http;
use qwglm_engine::hub::{self, CachedSource, Repo, Store};
use qwglm_engine::hub_web::{sleep_ms, OpfsStore, WebHttp};
use qwglm_engine::speech::{Recognizer, SpeechLoadOptions, TranscribeOptions};
use qwglm_engine::tensor::DType;

use crate::protocol::{
    ErrorKind, Event, GpuMemory, ImageRef, ModelInfo, ModelRole, ModelSource, Outcome, Request, SpeechInfo, TurnStats,
    TurnTranscript,
};

/// Largest picture decoded, checked from its header before any pixel is (64 megapixels).
const MAX_DECODE_PIXELS: u64 = 64 << 20;

#[derive(Default)]
struct State {
    gpu: Option<Rc<Gpu>>,
    model: Option<Rc<ChatModel>>,
    session: Option<Session>,
    /// Decoded pictures of the conversation by the page's key.
    images: HashMap<u64, Rc<RgbImage>>,
    /// Their patches for the loaded model, by key and pixel cap.
    prepared: HashMap<(u64, Option<usize>), ImageInput>,
    /// The chat request running now and whether it was asked to stop.
    running: Option<(u64, Rc<Cell<bool>>)>,
    speech: Option<Rc<Recognizer>>,
    /// The spoken turn being heard.
    listening: Option<Listening>,
    /// Silero VAD, fetched with the site on the first turn (`Err`: it could not be had, and
    /// turns go on without voice activity).
    vad: Option<Result<SileroVad, String>>,
}

/// A spoken turn: its audio at 16 kHz so far and how it should end.
struct Listening {
    id: u64,
    resampler: qwglm_audio::Resampler,
    samples: Vec<f32>,
    ended: bool,
    cancelled: bool,
    /// Turn detection on the samples, when the VAD is loaded.
    activity: Option<VoiceActivity>,
    /// Whether any speech was heard in the turn, and since the last partial decode.
    heard_speech: bool,
    speech_since_decode: bool,
}

/// The VAD weights, served beside the worker (scripts/build-site.sh copies them).
const VAD_URL: &str = "./vad/silero_vad_16k.safetensors";

/// Most audio one turn keeps (ten minutes at 16 kHz); later samples are dropped.
const MAX_TURN_SAMPLES: usize = 16_000 * 600;
/// Partial text is re-decoded after this much new audio (0.5 s) ...
const PARTIAL_STEP_SAMPLES: usize = 8_000;
/// ... while the turn fits one Whisper window (30 s); longer turns show the final text only.
const PARTIAL_MAX_SAMPLES: usize = 16_000 * 30;
/// New audio quieter than this (about -50 dBFS) is silence for the partial text.
const PARTIAL_SOUND_PEAK: f32 = 0.003;

impl State {
    fn memory(&self) -> GpuMemory {
        GpuMemory {
            chat: self.model.as_ref().map_or(0, |m| m.gpu_bytes) + self.session.as_ref().map_or(0, |s| s.gpu_bytes),
            speech: self.speech.as_ref().map_or(0, |r| r.gpu_bytes()),
        }
    }

    /// The device is gone and every model on it with it.
    fn drop_device(&mut self) {
        self.session = None;
        self.model = None;
        self.speech = None;
        self.gpu = None;
    }
}

/// A `Done` with nothing attached.
fn done(id: u64) -> Event {
    Event::Done { id, outcome: Outcome::default() }
}

/// A `Done` reporting `outcome`.
fn done_with(id: u64, outcome: Outcome) -> Event {
    Event::Done { id, outcome }
}

fn scope() -> web_sys::DedicatedWorkerGlobalScope {
    js_sys::global().unchecked_into()
}

fn post(ev: &Event) {
    match serde_json::to_string(ev) {
        Ok(s) => {
            if let Err(e) = scope().post_message(&JsValue::from_str(&s)) {
                log::error!("postMessage failed: {e:?}");
            }
        }
        Err(e) => log::error!("event not serialisable: {e}"),
    }
}

fn fail(id: u64, kind: ErrorKind, message: impl ToString) {
    post(&Event::Error { id, kind, message: message.to_string() });
}

/// Installs the message handler; called once from the worker binary's `main`.
pub fn start() {
    console_error_panic_hook::set_once();
    let state = Rc::new(RefCell::new(State::default()));
    let onmessage = Closure::<dyn FnMut(web_sys::MessageEvent)>::new(move |ev: web_sys::MessageEvent| {
        let data = ev.data();
        let json = js_sys::Reflect::get(&data, &JsValue::from_str("json")).ok().and_then(|j| j.as_string());
        let Some(text) = json else {
            fail(0, ErrorKind::Request, "request is not {json, buffers}");
            return;
        };
        let buffers: Vec<Vec<u8>> = js_sys::Reflect::get(&data, &JsValue::from_str("buffers"))
            .ok()
            .filter(js_sys::Array::is_array)
            .map(|b| js_sys::Array::from(&b).iter().map(|a| js_sys::Uint8Array::new(&a).to_vec()).collect())
            .unwrap_or_default();
        let req: Request = match serde_json::from_str(&text) {
            Ok(r) => r,
            Err(e) => {
                fail(0, ErrorKind::Request, format!("malformed request: {e}"));
                return;
            }
        };
        let state = state.clone();
        wasm_bindgen_futures::spawn_local(handle(state, req, buffers));
    });
    scope().set_onmessage(Some(onmessage.as_ref().unchecked_ref()));
    onmessage.forget();
    post(&Event::Started);
}

async fn handle(state: Rc<RefCell<State>>, req: Request, buffers: Vec<Vec<u8>>) {
    let id = req.id();
    match req {
        Request::Load { role: ModelRole::Chat, source, max_context, .. } => load(&state, id, source, max_context).await,
        Request::Load { role: ModelRole::Speech, source, .. } => load_speech(&state, id, source).await,
        Request::Storage { .. } => storage(id).await,
        Request::DeleteStored { repo, .. } => match delete_stored(&repo).await {
            Ok(()) => storage(id).await,
            Err(e) => fail(id, ErrorKind::Request, e),
        },
        Request::Chat { messages, images, max_pixels, params, .. } => {
            let inputs = match prepare_images(&state, &images, buffers, max_pixels) {
                Ok(i) => i,
                Err(e) => return fail(id, ErrorKind::Generate, e),
            };
            chat(&state, id, messages, inputs, params).await
        }
        Request::Cancel { target, .. } => {
            let mut st = state.borrow_mut();
            if let Some((_, flag)) = st.running.as_ref().filter(|(running, _)| *running == target) {
                flag.set(true);
            }
            if let Some(l) = st.listening.as_mut().filter(|l| l.id == target) {
                l.cancelled = true;
            }
            post(&done(id));
        }
        Request::Unload { role, .. } => {
            let mut st = state.borrow_mut();
            match role {
                ModelRole::Chat if st.running.is_some() => {
                    return fail(id, ErrorKind::Request, "a reply is being generated; stop it first")
                }
                ModelRole::Speech if st.listening.is_some() => {
                    return fail(id, ErrorKind::Request, "a spoken turn is being heard; end it first")
                }
                ModelRole::Chat => {
                    st.session = None;
                    st.model = None;
                }
                ModelRole::Speech => st.speech = None,
            }
            post(&done_with(id, Outcome { memory: Some(st.memory()), ..Default::default() }));
        }
        Request::Listen { sample_rate, language, partial, .. } => {
            listen(&state, id, sample_rate, language, partial).await
        }
        Request::Audio { target, .. } => {
            if let Err(e) = hear(&state, target, buffers) {
                fail(id, ErrorKind::Request, e);
            }
        }
        Request::EndTurn { target, .. } => {
            if let Some(l) = state.borrow_mut().listening.as_mut().filter(|l| l.id == target) {
                l.ended = true;
            }
            post(&done(id));
        }
    }
}

/// Lets progress events through at most once per interval (and always when `last`).
struct Every {
    interval_ms: f64,
    last_ms: f64,
}

impl Every {
    fn ms(interval_ms: f64) -> Self {
        Every { interval_ms, last_ms: 0.0 }
    }

    fn due(&mut self, last: bool) -> bool {
        let now = js_sys::Date::now();
        let due = last || now - self.last_ms > self.interval_ms;
        if due {
            self.last_ms = now;
        }
        due
    }
}

/// Load progress of request `id` as events, at most ten a second (and the last one).
fn load_progress(id: u64) -> impl FnMut(&qwglm_engine::models::layers::LoadProgress) {
    let mut every = Every::ms(100.0);
    move |p| {
        if every.due(p.bytes_done == p.bytes_total) {
            post(&Event::Progress {
                id,
                bytes_done: p.bytes_done,
                bytes_total: p.bytes_total,
                tensor: p.tensor.clone(),
            });
        }
    }
}

/// The origin-private folder of downloaded models.
const MODEL_STORE: &str = "qwglm-models";

/// Opens the model cache, lists the repository (or takes the stored listing offline), picks
/// the model's files and downloads what is not stored whole yet, reporting progress. The
/// store is returned open for the load (and closed here when this fails).
async fn fetch_model(
    id: u64,
    repo: &Repo,
    gguf: Option<&str>,
) -> Result<(OpfsStore, hub::Manifest, hub::ModelChoice), qwglm_engine::LoadError> {
    let store = OpfsStore::open(MODEL_STORE).await?;
    match fetch_into(&store, id, repo, gguf).await {
        Ok((manifest, choice)) => Ok((store, manifest, choice)),
        Err(e) => {
            store.close().await;
            Err(e)
        }
    }
}

async fn fetch_into(
    store: &OpfsStore,
    id: u64,
    repo: &Repo,
    gguf: Option<&str>,
) -> Result<(hub::Manifest, hub::ModelChoice), qwglm_engine::LoadError> {
    let manifest = hub::manifest(store, &WebHttp, repo).await?;
    let choice = hub::choose_files(&manifest, gguf)?;
    let mut every = Every::ms(150.0);
    hub::download(store, &WebHttp, &manifest, &choice.files, &mut |p| {
        if every.due(p.stage == "done") {
            post(&Event::Download { id, progress: p.clone() });
        }
        true
    })
    .await?;
    Ok((manifest, choice))
}

/// The quantized type a load asks for (`q8_0`, `q4_0`); other names keep the stored type.
fn quantized(name: Option<&str>) -> Option<DType> {
    name.and_then(DType::parse).filter(|d| d.is_quantized())
}

/// The cached models and the origin's storage estimate.
async fn storage(id: u64) {
    let listed = async {
        let store = OpfsStore::open(MODEL_STORE).await?;
        let models = hub::stored_models(&store).await;
        store.close().await;
        models
    };
    let models = match listed.await {
        Ok(m) => m,
        Err(e) => return fail(id, ErrorKind::Request, e),
    };
    let estimate = async {
        let sm = scope().navigator().storage();
        let est = wasm_bindgen_futures::JsFuture::from(sm.estimate().ok()?).await.ok()?;
        let get = |k: &str| js_sys::Reflect::get(&est, &JsValue::from_str(k)).ok().and_then(|v| v.as_f64());
        Some((get("usage"), get("quota")))
    };
    let (usage, quota) = estimate.await.unwrap_or((None, None));
    post(&Event::Stored { id, models, usage, quota });
}

async fn delete_stored(repo: &Repo) -> Result<(), qwglm_engine::LoadError> {
    let store = OpfsStore::open(MODEL_STORE).await?;
    let r = store.remove(&repo.key()).await;
    store.close().await;
    r
}

async fn load(state: &Rc<RefCell<State>>, id: u64, source: ModelSource, max_context: usize) {
    if state.borrow().running.is_some() {
        return fail(id, ErrorKind::Request, "a reply is being generated; stop it first");
    }
    // Drop the old model first so its GPU memory is free for the new one.
    {
        let mut st = state.borrow_mut();
        st.session = None;
        st.model = None;
        st.prepared.clear();
    }
    let gpu = match device(state).await {
        Ok(g) => g,
        Err(e) => return fail(id, ErrorKind::NoGpu, e),
    };
    let mut options = LoadOptions { max_context, ..Default::default() };
    let mut progress = load_progress(id);
    let loaded = match source {
        ModelSource::Url { base_url } => {
            ChatModel::load(gpu.clone(), &HttpSource::new(&base_url), options, &mut progress).await
        }
        ModelSource::Hub { repo, gguf, quantize } => {
            let (store, manifest, choice) = match fetch_model(id, &repo, gguf.as_deref()).await {
                Ok(x) => x,
                Err(e) => return fail(id, ErrorKind::Load, e),
            };
            options.weights = choice.weights;
            options.mmproj = choice.mmproj;
            options.quantize = quantized(quantize.as_deref());
            let src = CachedSource { store: &store, manifest };
            let r = ChatModel::load(gpu.clone(), &src, options, &mut progress).await;
            store.close().await;
            r
        }
    };
    let model = match loaded {
        Ok(m) => Rc::new(m),
        Err(e) => return load_failed(state, id, &gpu, e),
    };
    let session = match model.new_session() {
        Ok(s) => s,
        Err(e) => return fail(id, ErrorKind::Load, e),
    };
    let cfg = &model.text.cfg;
    let info = ModelInfo {
        family: format!("{:?}", model.family()),
        adapter: adapter_label(&gpu),
        layers: cfg.num_hidden_layers,
        hidden_size: cfg.hidden_size,
        vocab_size: cfg.vocab_size,
        max_context: model.max_context(),
        vision: model.vision.is_some(),
        defaults: SamplingParams::from_generation_config(&model.generation),
    };
    let mut st = state.borrow_mut();
    st.model = Some(model);
    st.session = Some(session);
    post(&done_with(id, Outcome { model: Some(info), memory: Some(st.memory()), ..Default::default() }));
}

/// The worker's GPU device, opened on first use and again after it was lost; every model
/// lives on this one device.
async fn device(state: &Rc<RefCell<State>>) -> Result<Rc<Gpu>, EngineError> {
    let existing = state.borrow().gpu.clone();
    match existing {
        Some(g) if g.check().is_ok() => return Ok(g),
        Some(_) => state.borrow_mut().drop_device(),
        None => {}
    }
    let gpu = Gpu::new().await?;
    // Another load may have opened one meanwhile: keep that one.
    let mut st = state.borrow_mut();
    match &st.gpu {
        Some(g) if g.check().is_ok() => Ok(g.clone()),
        _ => {
            st.gpu = Some(gpu.clone());
            Ok(gpu)
        }
    }
}

/// Reports a failed load; a lost device takes every model with it.
fn load_failed(state: &Rc<RefCell<State>>, id: u64, gpu: &Gpu, e: impl ToString) {
    if gpu.check().is_err() {
        state.borrow_mut().drop_device();
    }
    fail(id, ErrorKind::Load, e)
}

fn adapter_label(gpu: &Gpu) -> String {
    if gpu.adapter.name.is_empty() {
        gpu.adapter.backend.clone()
    } else {
        format!("{} ({})", gpu.adapter.name, gpu.adapter.backend)
    }
}

/// Loads the speech recognizer (a Whisper folder: Hub safetensors or faster-whisper's
/// CTranslate2 layout) beside whatever chat model is loaded.
async fn load_speech(state: &Rc<RefCell<State>>, id: u64, source: ModelSource) {
    if state.borrow().listening.is_some() {
        return fail(id, ErrorKind::Request, "a spoken turn is being heard; end it first");
    }
    state.borrow_mut().speech = None;
    let gpu = match device(state).await {
        Ok(g) => g,
        Err(e) => return fail(id, ErrorKind::NoGpu, e),
    };
    let mut progress = load_progress(id);
    let loaded = match source {
        ModelSource::Url { base_url } => {
            Recognizer::load(gpu.clone(), &HttpSource::new(&base_url), SpeechLoadOptions::default(), &mut progress)
                .await
        }
        ModelSource::Hub { repo, quantize, .. } => {
            let (store, manifest, _) = match fetch_model(id, &repo, None).await {
                Ok(x) => x,
                Err(e) => return fail(id, ErrorKind::Load, e),
            };
            let options = SpeechLoadOptions { quantize: quantized(quantize.as_deref()), ..Default::default() };
            let src = CachedSource { store: &store, manifest };
            let r = Recognizer::load(gpu.clone(), &src, options, &mut progress).await;
            store.close().await;
            r
        }
    };
    let rec = match loaded {
        Ok(r) => Rc::new(r),
        Err(e) => return load_failed(state, id, &gpu, e),
    };
    let c = &rec.model.cfg;
    let info = SpeechInfo {
        family: format!("Whisper (d{} · {}+{} layers)", c.d_model, c.encoder_layers, c.decoder_layers),
        multilingual: rec.tokens.multilingual,
        adapter: adapter_label(&gpu),
    };
    let mut st = state.borrow_mut();
    st.speech = Some(rec);
    post(&done_with(id, Outcome { speech: Some(info), memory: Some(st.memory()), ..Default::default() }));
}

/// Takes the samples of an audio chunk into the turn it belongs to (late chunks of an
/// ended turn are dropped).
fn hear(state: &Rc<RefCell<State>>, target: u64, buffers: Vec<Vec<u8>>) -> Result<(), String> {
    let mut st = state.borrow_mut();
    let Some(l) = st.listening.as_mut().filter(|l| l.id == target && !l.ended && !l.cancelled) else {
        return Ok(());
    };
    let [bytes] = &buffers[..] else { return Err(format!("an audio chunk has {} buffers, not 1", buffers.len())) };
    if bytes.len() % 4 != 0 {
        return Err(format!("an audio chunk of {} bytes is not f32 samples", bytes.len()));
    }
    let samples: Vec<f32> = bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .map(|x| if x.is_finite() { x.clamp(-1.0, 1.0) } else { 0.0 })
        .collect();
    let out = l.resampler.push(&samples).map_err(|e| e.to_string())?;
    let room = MAX_TURN_SAMPLES.saturating_sub(l.samples.len());
    let out = &out[..out.len().min(room)];
    l.samples.extend_from_slice(out);
    l.observe(out);
    Ok(())
}

impl Listening {
    /// Runs the turn detector over new samples, reporting where speech starts and ends.
    fn observe(&mut self, samples: &[f32]) {
        let Some(activity) = self.activity.as_mut() else { return };
        for ev in activity.push(samples) {
            let speaking = matches!(ev, VoiceEvent::Start { .. });
            self.heard_speech |= speaking;
            post(&Event::Voice { id: self.id, speaking });
        }
        self.speech_since_decode |= activity.speaking();
    }
}

/// The VAD, fetched and read once; `None` when it cannot be had (the reason is logged once).
async fn voice_activity(state: &Rc<RefCell<State>>) -> Option<VoiceActivity> {
    if state.borrow().vad.is_none() {
        let loaded = match WebHttp.get(VAD_URL).await {
            Ok(bytes) => SileroVad::from_safetensors(&bytes).map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        if let Err(e) = &loaded {
            log::warn!("no voice activity detection: {e}");
        }
        state.borrow_mut().vad = Some(loaded);
    }
    let vad = state.borrow().vad.as_ref()?.as_ref().ok()?.clone();
    Some(VoiceActivity::new(vad, TurnConfig::default()))
}

/// A spoken turn: gathers audio until `EndTurn` (or `Cancel`), posting the text so far every
/// half second of new audio, then answers with the transcript of the whole turn.
async fn listen(state: &Rc<RefCell<State>>, id: u64, sample_rate: u32, language: Option<String>, partial: bool) {
    let rec = {
        let mut st = state.borrow_mut();
        let Some(rec) = st.speech.clone() else {
            return fail(id, ErrorKind::Request, "no speech recognition model is loaded");
        };
        if st.listening.is_some() {
            return fail(id, ErrorKind::Request, "a spoken turn is already being heard");
        }
        let resampler = match qwglm_audio::Resampler::new(sample_rate, qwglm_audio::SAMPLE_RATE_HZ) {
            Ok(r) => r,
            Err(e) => return fail(id, ErrorKind::Request, format!("microphone audio: {e}")),
        };
        st.listening = Some(Listening {
            id,
            resampler,
            samples: Vec::new(),
            ended: false,
            cancelled: false,
            activity: None,
            heard_speech: false,
            speech_since_decode: false,
        });
        rec
    };
    // Audio that arrives while the VAD loads is heard; the VAD sees what comes after.
    let activity = voice_activity(state).await;
    let with_vad = activity.is_some();
    if let Some(l) = state.borrow_mut().listening.as_mut().filter(|l| l.id == id) {
        l.activity = activity;
        let so_far = l.samples.clone();
        l.observe(&so_far);
    }
    let opts = TranscribeOptions { language, ..Default::default() };
    let mut decoded_at = 0;
    let mut shown = String::new();
    loop {
        sleep_ms(50).await;
        let (ended, cancelled, due) = {
            let st = state.borrow();
            let Some(l) = st.listening.as_ref() else { return fail(id, ErrorKind::Request, "the turn was lost") };
            let n = l.samples.len();
            let due = partial && n >= decoded_at + PARTIAL_STEP_SAMPLES && n <= PARTIAL_MAX_SAMPLES;
            // Silence since the last decode cannot change the text: skip it.
            let sound = due
                && if with_vad {
                    l.speech_since_decode
                } else {
                    l.samples[decoded_at.min(n)..].iter().any(|x| x.abs() > PARTIAL_SOUND_PEAK)
                };
            if due && !sound {
                decoded_at = n;
            }
            (l.ended, l.cancelled, sound.then(|| l.samples.clone()))
        };
        if cancelled {
            state.borrow_mut().listening = None;
            return post(&done(id));
        }
        if ended {
            break;
        }
        if let Some(samples) = due {
            decoded_at = samples.len();
            if let Some(l) = state.borrow_mut().listening.as_mut() {
                l.speech_since_decode = l.activity.as_ref().is_some_and(VoiceActivity::speaking);
            }
            match rec.transcribe(&samples, &opts, &mut |_| {}).await {
                Ok(t) if t.text != shown => {
                    shown = t.text;
                    post(&Event::Partial { id, text: shown.clone() });
                }
                Ok(_) => {}
                Err(e) => {
                    state.borrow_mut().listening = None;
                    return speech_failed(state, id, e);
                }
            }
        }
    }
    let Some(l) = state.borrow_mut().listening.take() else { return };
    let mut samples = l.samples;
    match l.resampler.finish() {
        Ok(tail) => samples.extend_from_slice(&tail[..tail.len().min(MAX_TURN_SAMPLES.saturating_sub(samples.len()))]),
        Err(e) => return fail(id, ErrorKind::Request, format!("microphone audio: {e}")),
    }
    let audio_s = samples.len() as f64 / qwglm_audio::SAMPLE_RATE_HZ as f64;
    let t0 = qwglm_engine::gpu::now_ms();
    // No speech in the whole turn (silence, noise, music): no transcript, and no "Thank you."
    // from Whisper.
    let no_speech = with_vad && !l.heard_speech;
    let (text, language) = if samples.is_empty() || no_speech {
        (String::new(), None)
    } else {
        match rec.transcribe(&samples, &opts, &mut |_| {}).await {
            Ok(t) => (t.text, t.language),
            Err(e) => return speech_failed(state, id, e),
        }
    };
    let transcript = TurnTranscript { text, language, audio_s, elapsed_ms: qwglm_engine::gpu::now_ms() - t0 };
    let memory = state.borrow().memory();
    post(&done_with(id, Outcome { transcript: Some(transcript), memory: Some(memory), ..Default::default() }));
}

/// Reports a failed transcription; a lost device takes every model with it.
fn speech_failed(state: &Rc<RefCell<State>>, id: u64, e: EngineError) {
    let lost = state.borrow().gpu.as_ref().is_none_or(|g| g.check().is_err());
    if lost {
        state.borrow_mut().drop_device();
        fail(id, ErrorKind::NoGpu, format!("{e} — the GPU device was lost; load the models again"))
    } else {
        fail(id, ErrorKind::Generate, e)
    }
}

/// Decodes the pictures the worker has not seen (by key) and lays them out for the model.
fn prepare_images(
    state: &Rc<RefCell<State>>,
    refs: &[ImageRef],
    buffers: Vec<Vec<u8>>,
    max_pixels: Option<usize>,
) -> Result<Vec<ImageInput>, String> {
    if refs.is_empty() {
        return Ok(Vec::new());
    }
    let mut st = state.borrow_mut();
    let Some(model) = st.model.clone() else { return Err("no model is loaded".into()) };
    if refs.len() != buffers.len() {
        return Err(format!("{} pictures but {} buffers", refs.len(), buffers.len()));
    }
    // Pictures no longer in the conversation are dropped.
    let keys: std::collections::HashSet<u64> = refs.iter().map(|r| r.key).collect();
    st.images.retain(|k, _| keys.contains(k));
    st.prepared.retain(|(k, _), _| keys.contains(k));
    let mut out = Vec::with_capacity(refs.len());
    for (r, bytes) in refs.iter().zip(buffers) {
        if let Some(p) = st.prepared.get(&(r.key, max_pixels)) {
            out.push(p.clone());
            continue;
        }
        let img = match st.images.get(&r.key) {
            Some(i) => i.clone(),
            None => {
                let decoded = match r.rgba {
                    Some((w, h)) => qwglm_vision::from_rgba(w, h, bytes),
                    None => qwglm_vision::decode(&bytes, DecodeLimits { max_pixels: MAX_DECODE_PIXELS }),
                }
                .map_err(|e| format!("picture {}: {e}", out.len() + 1))?;
                let rc = Rc::new(decoded);
                st.images.insert(r.key, rc.clone());
                rc
            }
        };
        let input = model.prepare_image(&img, max_pixels).map_err(|e| e.to_string())?;
        st.prepared.insert((r.key, max_pixels), input.clone());
        out.push(input);
    }
    Ok(out)
}

async fn chat(
    state: &Rc<RefCell<State>>,
    id: u64,
    messages: Vec<qwglm_engine::chat::Message>,
    images: Vec<ImageInput>,
    params: Option<SamplingParams>,
) {
    let (model, session, cancel) = {
        let mut st = state.borrow_mut();
        if st.running.is_some() {
            return fail(id, ErrorKind::Request, "a reply is already being generated");
        }
        let Some(model) = st.model.clone() else {
            return fail(id, ErrorKind::Request, "no model is loaded");
        };
        let session = match st.session.take() {
            Some(s) => s,
            None => match model.new_session() {
                Ok(s) => s,
                Err(e) => return fail(id, ErrorKind::Generate, e),
            },
        };
        let cancel = Rc::new(Cell::new(false));
        st.running = Some((id, cancel.clone()));
        (model, session, cancel)
    };
    let mut session = session;
    let result = run_turn(&model, &mut session, &messages, &images, params, id, &cancel).await;
    let mut st = state.borrow_mut();
    st.running = None;
    // A failed turn drops nothing but its own cache entries; the session stays usable unless
    // the device itself is gone.
    let device_ok = st.gpu.as_ref().is_some_and(|g| g.check().is_ok());
    if device_ok {
        st.session = Some(session);
    } else {
        st.drop_device();
    }
    match result {
        Ok(stats) => post(&done_with(id, Outcome { stats: Some(stats), ..Default::default() })),
        Err(e) if !device_ok => {
            fail(id, ErrorKind::NoGpu, format!("{e} — the GPU device was lost; load the model again"))
        }
        Err(e) => fail(id, ErrorKind::Generate, e),
    }
}

async fn run_turn(
    model: &ChatModel,
    session: &mut Session,
    messages: &[qwglm_engine::chat::Message],
    images: &[ImageInput],
    params: Option<SamplingParams>,
    id: u64,
    cancel: &Cell<bool>,
) -> Result<TurnStats, EngineError> {
    let prompt = model.prompt(messages, images)?;
    let params = params.unwrap_or_else(|| SamplingParams::from_generation_config(&model.generation));
    let summary = model
        .generate(session, &prompt, &params, &mut |ev| {
            if !ev.text.is_empty() {
                post(&Event::Token { id, text: ev.text.clone() });
            }
            !cancel.get()
        })
        .await?;
    Ok(TurnStats {
        prompt_tokens: summary.prompt_tokens,
        generated_tokens: summary.generated_tokens,
        prefill_ms: summary.prefill_ms,
        vision_ms: summary.vision_ms,
        decode_tokens_per_s: summary.decode_tokens_per_s,
        stop: format!("{:?}", summary.stop).to_lowercase(),
    })
}
