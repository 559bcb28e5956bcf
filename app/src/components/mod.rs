//! UI components, one per file.

pub mod composer;
pub mod message_list;
pub mod model_bar;
pub mod screen_share;
pub mod settings;
pub mod storage;
pub mod voice;

use wasm_bindgen::{JsCast, JsValue};

/// The message of a thrown JavaScript value (an `Error` or `DOMException`, or a string).
pub(crate) fn js_message(e: &JsValue) -> String {
    js_sys::Reflect::get(e, &JsValue::from_str("message"))
        .ok()
        .and_then(|m| m.as_string())
        .or_else(|| e.as_string())
        .unwrap_or_else(|| format!("{e:?}"))
}

/// Stops every track of a capture stream (microphone, shared screen).
pub(crate) fn stop_tracks(stream: &web_sys::MediaStream) {
    for t in stream.get_tracks().iter() {
        if let Ok(track) = t.dyn_into::<web_sys::MediaStreamTrack>() {
            track.stop();
        }
    }
}
