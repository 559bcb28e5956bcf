//! Talking to the assistant: the microphone button (click to start and click again to stop,
//! or hold it down while speaking), capture through an AudioWorklet at the device's rate,
//! chunks of samples moved to the worker as transferables (it resamples and transcribes), the
//! live transcript in the composer, and the message sent when the turn ends (or left there to
//! edit, as the settings say).

use leptos::prelude::*;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;

use crate::components::{js_message, stop_tracks};
use crate::protocol::{Request, TurnTranscript};
use crate::state::{use_app_state, AppState, Listening, ModelStatus};

/// The AudioWorklet module (public/mic-worklet.js) and its processor's name.
const WORKLET_URL: &str = "./mic-worklet.js";
const PROCESSOR: &str = "qwglm-mic";
/// A press held at least this long is push-to-talk: releasing it ends the turn.
const HOLD_MS: f64 = 350.0;
/// How long the end of a turn waits for the worklet's last samples.
const FLUSH_WAIT_MS: i32 = 600;

/// The microphone while it is captured.
pub struct Mic {
    ctx: web_sys::AudioContext,
    stream: web_sys::MediaStream,
    node: web_sys::AudioWorkletNode,
    _on_chunk: Closure<dyn FnMut(web_sys::MessageEvent)>,
}

impl Mic {
    fn close(&self) {
        self.node.port().map(|p| p.set_onmessage(None)).unwrap_or_default();
        let _ = self.node.disconnect();
        stop_tracks(&self.stream);
        let _ = self.ctx.close();
    }
}

/// Whether `id` is the spoken turn being heard.
pub fn is_turn(st: AppState, id: u64) -> bool {
    st.listening.with_untracked(|l| l.as_ref().is_some_and(|l| l.id == id))
}

/// The text before the turn and the words heard, with one space between.
fn join(before: &str, heard: &str) -> String {
    let heard = heard.trim();
    match (before.trim_end().is_empty(), heard.is_empty()) {
        (true, _) => heard.to_string(),
        (false, true) => before.to_string(),
        (false, false) => format!("{} {heard}", before.trim_end()),
    }
}

/// The text so far of turn `id` goes into the composer.
pub fn partial(st: AppState, id: u64, text: &str) {
    if let Some(l) = st.listening.get_untracked().filter(|l| l.id == id) {
        st.draft.set(join(&l.before, text));
    }
}

/// Voice activity in turn `id`: shown, and the end of speech ends a turn the button is not
/// holding open (when the settings say so).
pub fn voice(st: AppState, id: u64, speaking: bool) {
    if !is_turn(st, id) {
        return;
    }
    st.listening.update(|l| {
        if let Some(l) = l {
            l.speaking = speaking;
        }
    });
    if !speaking && st.settings.get_untracked().auto_end && !st.mic_held.get_value() {
        end_turn(st);
    }
}

/// The turn's final text: into the composer, and sent when the settings say so.
pub fn heard(st: AppState, transcript: Option<TurnTranscript>) {
    let Some(l) = st.listening.get_untracked() else { return };
    st.listening.set(None);
    stop_capture(st);
    match transcript {
        None => st.draft.set(l.before),
        Some(t) if t.text.trim().is_empty() => {
            st.draft.set(l.before);
            st.voice_notice.set(Some(format!(
                "Nothing was heard in {:.1} s of audio: speak closer to the microphone, or check its level in \
                 the system's sound settings",
                t.audio_s
            )));
        }
        Some(t) => {
            let text = join(&l.before, &t.text);
            let ready = matches!(st.status.get_untracked(), ModelStatus::Ready(_));
            if st.settings.get_untracked().send_spoken && ready && st.running.get_untracked().is_none() {
                st.draft.set(String::new());
                st.send_message(text);
            } else {
                st.draft.set(text);
            }
        }
    }
}

/// The turn failed in the worker: the microphone stops and the composer keeps what it had.
pub fn turn_failed(st: AppState, message: &str) {
    if let Some(l) = st.listening.get_untracked() {
        st.draft.set(l.before);
    }
    st.listening.set(None);
    stop_capture(st);
    st.voice_notice.set(Some(format!("Could not transcribe: {message}")));
}

fn stop_capture(st: AppState) {
    if let Some(mic) = st.mic.try_update_value(Option::take).flatten() {
        mic.close();
    }
}

/// What a failed `getUserMedia` means for the person at the microphone.
fn mic_error(e: &JsValue) -> String {
    let name = e.dyn_ref::<web_sys::DomException>().map(|d| d.name()).unwrap_or_default();
    match name.as_str() {
        "NotAllowedError" | "SecurityError" => {
            "Microphone access was refused: allow the microphone for this site in the browser's settings to talk \
             to qwglm"
                .into()
        }
        "NotFoundError" | "OverconstrainedError" => {
            "No microphone was found: connect one (or choose one in the system's sound settings) and try again".into()
        }
        "NotReadableError" | "AbortError" => {
            "The microphone could not be started: another application may be using it".into()
        }
        _ => format!("The microphone could not be opened: {}", js_message(e)),
    }
}

/// Opens the microphone, the audio context at the device's rate and the capture worklet
/// (not yet connected).
async fn open_mic() -> Result<(web_sys::AudioContext, web_sys::MediaStream, web_sys::AudioWorkletNode), String> {
    let window = web_sys::window().ok_or("no window")?;
    let devices = window
        .navigator()
        .media_devices()
        .map_err(|_| "This browser gives no microphone access here (the page must be served over HTTPS)".to_string())?;
    let constraints = web_sys::MediaStreamConstraints::new();
    // Echo cancellation keeps the assistant's own voice out of what it hears; noise
    // suppression and gain control are left off: they reshape speech in ways Whisper was not
    // trained on, and it copes with noise itself.
    let audio = js_sys::Object::new();
    for (key, on) in [("echoCancellation", true), ("noiseSuppression", false), ("autoGainControl", false)] {
        let _ = js_sys::Reflect::set(&audio, &JsValue::from_str(key), &JsValue::from_bool(on));
    }
    let _ = js_sys::Reflect::set(&audio, &JsValue::from_str("channelCount"), &JsValue::from(1));
    constraints.set_audio(&audio);
    let promise = devices.get_user_media_with_constraints(&constraints).map_err(|e| mic_error(&e))?;
    let stream: web_sys::MediaStream = JsFuture::from(promise).await.map_err(|e| mic_error(&e))?.unchecked_into();
    let setup = async {
        let ctx = web_sys::AudioContext::new().map_err(|e| format!("no audio context: {}", js_message(&e)))?;
        let worklet = ctx.audio_worklet().map_err(|e| format!("no audio worklet: {}", js_message(&e)))?;
        let added = worklet.add_module(WORKLET_URL).map_err(|e| js_message(&e))?;
        JsFuture::from(added).await.map_err(|e| format!("the capture worklet did not load: {}", js_message(&e)))?;
        let node = web_sys::AudioWorkletNode::new(&ctx, PROCESSOR)
            .map_err(|e| format!("the capture worklet did not start: {}", js_message(&e)))?;
        if let Ok(p) = ctx.resume() {
            let _ = JsFuture::from(p).await;
        }
        Ok::<_, String>((ctx, node))
    };
    match setup.await {
        Ok((ctx, node)) => Ok((ctx, stream, node)),
        Err(e) => {
            stop_tracks(&stream);
            Err(e)
        }
    }
}

/// Starts a spoken turn: the microphone opens, the worker starts listening, and the words
/// heard appear in the composer.
pub fn start_listening(st: AppState) {
    if st.listening.get_untracked().is_some() {
        return;
    }
    if !matches!(st.speech_status.get_untracked(), ModelStatus::Ready(_)) {
        st.voice_notice.set(Some("Load a speech recognition model first (under Speech)".into()));
        return;
    }
    st.voice_notice.set(None);
    // Id 0 while the microphone opens; a release meanwhile ends the turn as soon as it is open.
    st.listening.set(Some(Listening { id: 0, before: st.draft.get_untracked(), capturing: true, speaking: false }));
    wasm_bindgen_futures::spawn_local(async move {
        let (ctx, stream, node) = match open_mic().await {
            Ok(m) => m,
            Err(e) => {
                st.listening.set(None);
                st.voice_notice.set(Some(e));
                return;
            }
        };
        let s = st.settings.get_untracked();
        let sample_rate = ctx.sample_rate().round() as u32;
        let language = s.speech_language.clone();
        let partial = s.live_transcript;
        let Some(id) = st.send(|id| Request::Listen { id, sample_rate, language, partial }) else {
            st.listening.set(None);
            return;
        };
        let on_chunk = Closure::<dyn FnMut(web_sys::MessageEvent)>::new(move |ev: web_sys::MessageEvent| {
            let data = ev.data();
            if let Some(samples) = data.dyn_ref::<js_sys::Float32Array>() {
                let bytes = js_sys::Uint8Array::new_with_byte_offset_and_length(
                    &samples.buffer(),
                    samples.byte_offset(),
                    samples.byte_length(),
                );
                st.send_with(vec![bytes], |cid| Request::Audio { id: cid, target: id });
            } else if data.as_string().as_deref() == Some("flushed") {
                finish_capture(st, id);
            }
        });
        if let Ok(port) = node.port() {
            port.set_onmessage(Some(on_chunk.as_ref().unchecked_ref()));
        }
        let connected = ctx
            .create_media_stream_source(&stream)
            .and_then(|src| src.connect_with_audio_node(&node))
            .and_then(|_| node.connect_with_audio_node(&ctx.destination()));
        st.mic.set_value(Some(Mic { ctx, stream, node, _on_chunk: on_chunk }));
        if let Err(e) = connected {
            st.send(|cid| Request::Cancel { id: cid, target: id });
            st.listening.set(None);
            stop_capture(st);
            st.voice_notice.set(Some(format!("The microphone could not be connected: {}", js_message(&e))));
            return;
        }
        let released = st.listening.get_untracked().is_some_and(|l| !l.capturing);
        st.listening.update(|l| {
            if let Some(l) = l {
                l.id = id;
            }
        });
        if released {
            end_turn(st);
        }
    });
}

/// The speaker is done: the worklet hands over its last samples, then the worker makes the
/// final text.
pub fn end_turn(st: AppState) {
    let Some(l) = st.listening.get_untracked() else { return };
    st.listening.update(|l| {
        if let Some(l) = l {
            l.capturing = false;
        }
    });
    if l.id == 0 {
        return; // still opening: start_listening ends it once the microphone is open
    }
    let port = st.mic.with_value(|m| m.as_ref().and_then(|m| m.node.port().ok()));
    match port {
        Some(p) if p.post_message(&JsValue::from_str("flush")).is_ok() => {
            let id = l.id;
            let cb = Closure::once_into_js(move || finish_capture(st, id));
            if let Some(w) = web_sys::window() {
                let _ = w.set_timeout_with_callback_and_timeout_and_arguments_0(cb.unchecked_ref(), FLUSH_WAIT_MS);
            }
        }
        _ => finish_capture(st, l.id),
    }
}

/// Closes the microphone and tells the worker the turn is over (once).
fn finish_capture(st: AppState, id: u64) {
    if !is_turn(st, id) || st.mic.with_value(Option::is_none) {
        return;
    }
    stop_capture(st);
    st.send(|cid| Request::EndTurn { id: cid, target: id });
}

/// Drops the turn: nothing it heard is kept.
pub fn cancel_turn(st: AppState) {
    let Some(l) = st.listening.get_untracked() else { return };
    stop_capture(st);
    st.listening.set(None);
    st.draft.set(l.before);
    if l.id != 0 {
        st.send(|cid| Request::Cancel { id: cid, target: l.id });
    }
}

/// The microphone button: a click starts a turn and the next click ends it; holding the
/// button down talks until it is released.
#[component]
pub fn MicButton() -> impl IntoView {
    let st = use_app_state();
    // When the current press began and whether it started the turn.
    let press: StoredValue<Option<(f64, bool)>> = StoredValue::new(None);
    let listening = move || st.listening.with(Option::is_some);
    let capturing = move || st.listening.with(|l| l.as_ref().is_some_and(|l| l.capturing));
    let ready = move || matches!(st.speech_status.get(), ModelStatus::Ready(_));
    view! {
        <button
            type="button"
            class="mic"
            class:listening=capturing
            data-testid="mic"
            aria-pressed=move || if capturing() { "true" } else { "false" }
            title=move || if ready() {
                "Talk: click to start and again to stop, or hold while speaking"
            } else {
                "Load a speech recognition model to talk"
            }
            on:pointerdown=move |_| {
                st.mic_held.set_value(true);
                let started = !listening();
                press.set_value(Some((js_sys::Date::now(), started)));
                if started {
                    start_listening(st);
                }
            }
            on:pointerleave=move |_| st.mic_held.set_value(false)
            on:pointerup=move |_| {
                st.mic_held.set_value(false);
                if let Some((t0, true)) = press.get_value() {
                    if js_sys::Date::now() - t0 >= HOLD_MS && capturing() {
                        end_turn(st);
                        // The click that follows this release must not start another turn.
                        press.set_value(Some((f64::NAN, true)));
                    }
                }
            }
            on:click=move |_| match press.get_value() {
                // The press that started the turn (or a push-to-talk release): nothing more.
                Some((_, true)) => press.set_value(None),
                Some((_, false)) => {
                    press.set_value(None);
                    end_turn(st);
                }
                // A keyboard press: toggle.
                None => {
                    if capturing() {
                        end_turn(st);
                    } else if !listening() {
                        start_listening(st);
                    }
                }
            }
        >
            "🎤"
        </button>
        <Show when=listening>
            <span class="listening" data-testid="listening">
                {move || match st.listening.get() {
                    Some(l) if l.capturing && l.speaking => "Listening… (hearing you)",
                    Some(l) if l.capturing => "Listening…",
                    _ => "Transcribing…",
                }}
            </span>
            <button type="button" class="mic-cancel" data-testid="mic-cancel" aria-label="Cancel the spoken turn"
                on:click=move |_| cancel_turn(st)>"×"</button>
        </Show>
    }
}
