//! Screen sharing: `getDisplayMedia` with a live preview, "Ask about my screen" (the current
//! frame goes into the composer) and auto-capture of a fresh frame with every message. Frames
//! are downscaled on a canvas to the pixel budget of the settings before they leave the page.
//! Stopping the share, or the browser ending it, releases the stream.

use leptos::prelude::*;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;

use crate::components::{js_message, stop_tracks};
use crate::state::{use_app_state, AppState, Attachment};

/// Stops every track of the shared stream and forgets it.
fn stop_share(st: AppState) {
    if let Some(stream) = st.screen.get_untracked() {
        stop_tracks(&stream);
    }
    st.screen.set(None);
}

async fn start_share(st: AppState) {
    st.screen_notice.set(None);
    let media = web_sys::window().and_then(|w| w.navigator().media_devices().ok());
    let Some(media) = media else {
        st.screen_notice.set(Some("Screen sharing is not available in this browser.".into()));
        return;
    };
    let constraints = web_sys::DisplayMediaStreamConstraints::new();
    constraints.set_video(&JsValue::TRUE);
    let promise = match media.get_display_media_with_constraints(&constraints) {
        Ok(p) => p,
        Err(e) => {
            st.screen_notice.set(Some(format!("Screen sharing could not start: {}", js_message(&e))));
            return;
        }
    };
    match wasm_bindgen_futures::JsFuture::from(promise).await {
        Ok(stream) => {
            let stream: web_sys::MediaStream = stream.unchecked_into();
            // The browser's own "Stop sharing" ends the track: release and say so.
            for t in stream.get_video_tracks().iter() {
                if let Ok(track) = t.dyn_into::<web_sys::MediaStreamTrack>() {
                    let onended = Closure::<dyn FnMut()>::new(move || {
                        stop_share(st);
                        st.screen_notice.set(Some("Screen sharing ended.".into()));
                    });
                    track.set_onended(Some(onended.as_ref().unchecked_ref()));
                    onended.forget();
                }
            }
            st.screen.set(Some(stream));
        }
        Err(e) => st.screen_notice.set(Some(format!("Screen sharing was not allowed: {}", js_message(&e)))),
    }
}

/// The preview element of the shared screen (the page has at most one).
fn preview() -> Option<web_sys::HtmlVideoElement> {
    web_sys::window()?.document()?.query_selector("[data-testid=screen-preview]").ok()??.dyn_into().ok()
}

/// The current frame of the shared screen, downscaled to the settings' pixel budget, as an
/// RGBA attachment shown by a PNG data URL of the same pixels.
pub fn capture_frame(st: AppState) -> Result<Attachment, String> {
    let video = preview().ok_or("The screen is not being shared.")?;
    let (w, h) = (video.video_width(), video.video_height());
    if w == 0 || h == 0 {
        return Err("The shared screen has no frame yet; try again in a moment.".into());
    }
    let budget = st.settings.get_untracked().max_image_pixels.max(1) as f64;
    let scale = (budget / (w as f64 * h as f64)).sqrt().min(1.0);
    let (cw, ch) = (((w as f64 * scale) as u32).max(1), ((h as f64 * scale) as u32).max(1));
    let fail = |e: JsValue| format!("Could not capture the screen: {}", js_message(&e));
    let document = web_sys::window().and_then(|w| w.document()).ok_or("no document")?;
    let canvas: web_sys::HtmlCanvasElement =
        document.create_element("canvas").map_err(fail)?.dyn_into().map_err(|_| "no canvas".to_string())?;
    canvas.set_width(cw);
    canvas.set_height(ch);
    let ctx: web_sys::CanvasRenderingContext2d = canvas
        .get_context("2d")
        .map_err(fail)?
        .ok_or("no 2d context")?
        .dyn_into()
        .map_err(|_| "no 2d context".to_string())?;
    ctx.draw_image_with_html_video_element_and_dw_and_dh(&video, 0.0, 0.0, cw as f64, ch as f64).map_err(fail)?;
    let pixels = ctx.get_image_data(0.0, 0.0, cw as f64, ch as f64).map_err(fail)?.data();
    let url = canvas.to_data_url().map_err(fail)?;
    let data = js_sys::Uint8Array::from(&pixels[..]);
    Ok(Attachment { key: st.next_key(), url, data, rgba: Some((cw, ch)) })
}

/// Share button, live preview, capture and auto-capture controls, and notices.
#[component]
pub fn ScreenShare() -> impl IntoView {
    let st = use_app_state();
    let video = NodeRef::<leptos::html::Video>::new();
    // Attach the stream to the preview whenever either changes.
    Effect::new(move |_| {
        if let (Some(v), Some(stream)) = (video.get(), st.screen.get()) {
            let el: &web_sys::HtmlMediaElement = v.as_ref();
            el.set_src_object(Some(&stream));
            let _ = el.play();
        }
    });
    on_cleanup(move || stop_share(st));
    let sharing = move || st.screen.with(|s| s.is_some());
    let capture = move |_| match capture_frame(st) {
        Ok(a) => st.pending.update(|p| p.push(a)),
        Err(e) => st.screen_notice.set(Some(e)),
    };
    view! {
        <div class="screen-share">
            <Show
                when=sharing
                fallback=move || view! {
                    <button type="button" data-testid="share-screen"
                        on:click=move |_| wasm_bindgen_futures::spawn_local(start_share(st))>"Share screen"</button>
                }
            >
                <video node_ref=video data-testid="screen-preview" autoplay=true muted=true playsinline=true></video>
                <div class="screen-controls">
                    <button type="button" data-testid="capture-screen" on:click=capture>"Ask about my screen"</button>
                    <label>
                        <input type="checkbox" data-testid="auto-capture"
                            prop:checked=move || st.auto_capture.get()
                            on:change=move |ev| st.auto_capture.set(event_target_checked(&ev))/>
                        "Send the current screen with each message"
                    </label>
                    <button type="button" data-testid="stop-share" on:click=move |_| stop_share(st)>"Stop sharing"</button>
                </div>
            </Show>
            <Show when=move || st.screen_notice.get().is_some()>
                <div class="notice" data-testid="screen-notice">{move || st.screen_notice.get().unwrap_or_default()}</div>
            </Show>
        </div>
    }
}
