//! The engine worker: owns the GPU device, the loaded model and the conversation's KV cache,
//! and answers [`Request`]s from the page. Nothing here panics on bad input; every request ends
//! in one `Done` or `Error`.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use qwglm_engine::generate::SamplingParams;
use qwglm_engine::load::HttpSource;
use qwglm_engine::pipeline::{ChatModel, LoadOptions, Session};
use qwglm_engine::{EngineError, Gpu};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;

use crate::protocol::{ErrorKind, Event, ModelInfo, Request, TurnStats};

#[derive(Default)]
struct State {
    gpu: Option<Rc<Gpu>>,
    model: Option<Rc<ChatModel>>,
    session: Option<Session>,
    /// The chat request running now and whether it was asked to stop.
    running: Option<(u64, Rc<Cell<bool>>)>,
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
        let Some(text) = ev.data().as_string() else {
            fail(0, ErrorKind::Request, "request is not a JSON string");
            return;
        };
        let req: Request = match serde_json::from_str(&text) {
            Ok(r) => r,
            Err(e) => {
                fail(0, ErrorKind::Request, format!("malformed request: {e}"));
                return;
            }
        };
        let state = state.clone();
        wasm_bindgen_futures::spawn_local(handle(state, req));
    });
    scope().set_onmessage(Some(onmessage.as_ref().unchecked_ref()));
    onmessage.forget();
    post(&Event::Started);
}

async fn handle(state: Rc<RefCell<State>>, req: Request) {
    let id = req.id();
    match req {
        Request::Load { base_url, max_context, .. } => load(&state, id, &base_url, max_context).await,
        Request::Chat { messages, params, .. } => chat(&state, id, messages, params).await,
        Request::Cancel { target, .. } => {
            let st = state.borrow();
            match &st.running {
                Some((running, flag)) if *running == target => {
                    flag.set(true);
                    post(&Event::Done { id, model: None, stats: None });
                }
                _ => post(&Event::Done { id, model: None, stats: None }),
            }
        }
        Request::Unload { .. } => {
            let mut st = state.borrow_mut();
            if st.running.is_some() {
                fail(id, ErrorKind::Request, "a reply is being generated; stop it first");
                return;
            }
            st.session = None;
            st.model = None;
            post(&Event::Done { id, model: None, stats: None });
        }
    }
}

async fn load(state: &Rc<RefCell<State>>, id: u64, base_url: &str, max_context: usize) {
    if state.borrow().running.is_some() {
        return fail(id, ErrorKind::Request, "a reply is being generated; stop it first");
    }
    // Drop the old model first so its GPU memory is free for the new one.
    {
        let mut st = state.borrow_mut();
        st.session = None;
        st.model = None;
    }
    let existing = state.borrow().gpu.clone();
    let gpu = match existing {
        Some(g) if g.check().is_ok() => g,
        _ => match Gpu::new().await {
            Ok(g) => {
                state.borrow_mut().gpu = Some(g.clone());
                g
            }
            Err(e) => return fail(id, ErrorKind::NoGpu, e),
        },
    };
    let src = HttpSource::new(base_url);
    let options = LoadOptions { max_context, ..Default::default() };
    let mut last_post = 0.0;
    let mut progress = |p: &qwglm_engine::models::layers::LoadProgress| {
        let now = js_sys::Date::now();
        if now - last_post > 100.0 || p.bytes_done == p.bytes_total {
            last_post = now;
            post(&Event::Progress {
                id,
                bytes_done: p.bytes_done,
                bytes_total: p.bytes_total,
                tensor: p.tensor.clone(),
            });
        }
    };
    let model = match ChatModel::load(gpu.clone(), &src, options, &mut progress).await {
        Ok(m) => Rc::new(m),
        Err(e) => {
            if gpu.check().is_err() {
                state.borrow_mut().gpu = None;
            }
            return fail(id, ErrorKind::Load, e);
        }
    };
    let session = match model.new_session() {
        Ok(s) => s,
        Err(e) => return fail(id, ErrorKind::Load, e),
    };
    let cfg = &model.text.cfg;
    let info = ModelInfo {
        family: format!("{:?}", model.family()),
        adapter: if gpu.adapter.name.is_empty() {
            gpu.adapter.backend.clone()
        } else {
            format!("{} ({})", gpu.adapter.name, gpu.adapter.backend)
        },
        layers: cfg.num_hidden_layers,
        hidden_size: cfg.hidden_size,
        vocab_size: cfg.vocab_size,
        max_context: model.max_context(),
        defaults: SamplingParams::from_generation_config(&model.generation),
    };
    let mut st = state.borrow_mut();
    st.model = Some(model);
    st.session = Some(session);
    post(&Event::Done { id, model: Some(info), stats: None });
}

async fn chat(
    state: &Rc<RefCell<State>>,
    id: u64,
    messages: Vec<qwglm_engine::chat::Message>,
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
    let result = run_turn(&model, &mut session, &messages, params, id, &cancel).await;
    let mut st = state.borrow_mut();
    st.running = None;
    // A failed turn drops nothing but its own cache entries; the session stays usable unless
    // the device itself is gone.
    let device_ok = st.gpu.as_ref().is_some_and(|g| g.check().is_ok());
    if device_ok {
        st.session = Some(session);
    } else {
        st.session = None;
        st.model = None;
        st.gpu = None;
    }
    match result {
        Ok(stats) => post(&Event::Done { id, model: None, stats: Some(stats) }),
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
    params: Option<SamplingParams>,
    id: u64,
    cancel: &Cell<bool>,
) -> Result<TurnStats, EngineError> {
    let prompt = model.prompt(messages, &[])?;
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
        decode_tokens_per_s: summary.decode_tokens_per_s,
        stop: format!("{:?}", summary.stop).to_lowercase(),
    })
}
