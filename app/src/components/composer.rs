//! The message box with Send and Stop, and pictures: attached by the picker, pasted or
//! dropped, shown as thumbnails until the message is sent.

use leptos::prelude::*;
use wasm_bindgen::JsCast;

use crate::components::voice::MicButton;
use crate::state::{use_app_state, AppState, Attachment, ModelStatus};

/// Reads picture files into attachments waiting in the composer; other files are skipped.
fn attach_files(st: AppState, files: Option<web_sys::FileList>) {
    let Some(files) = files else { return };
    for i in 0..files.length() {
        let Some(file) = files.get(i) else { continue };
        if !file.type_().starts_with("image/") {
            continue;
        }
        wasm_bindgen_futures::spawn_local(async move {
            let Ok(buf) = wasm_bindgen_futures::JsFuture::from(file.array_buffer()).await else {
                st.screen_notice.set(Some(format!("Could not read {}", file.name())));
                return;
            };
            let url = web_sys::Url::create_object_url_with_blob(&file).unwrap_or_default();
            let data = js_sys::Uint8Array::new(&buf);
            st.pending.update(|p| p.push(Attachment { key: st.next_key(), url, data, rgba: None }));
        });
    }
}

/// Text input; Enter sends, Shift+Enter starts a new line.
#[component]
pub fn Composer() -> impl IntoView {
    let st = use_app_state();
    let text = st.draft;
    let listening = move || st.listening.with(Option::is_some);
    let ready = move || matches!(st.status.get(), ModelStatus::Ready(_));
    let vision = move || matches!(st.status.get(), ModelStatus::Ready(info) if info.vision);
    let busy = move || st.running.get().is_some();
    let has_content = move || !text.get().trim().is_empty() || !st.pending.with(|p| p.is_empty());
    let send = move || {
        let t = text.get_untracked();
        let sharing = st.screen.with_untracked(|s| s.is_some());
        let content = !t.trim().is_empty() || !st.pending.with_untracked(|p| p.is_empty()) || sharing;
        if ready() && !busy() && content {
            text.set(String::new());
            st.send_message(t);
        }
    };
    let remove = move |key: u64| st.pending.update(|p| p.retain(|a| a.key != key));
    view! {
        <form
            class="composer"
            on:submit=move |ev| { ev.prevent_default(); send(); }
            on:dragover=move |ev: web_sys::DragEvent| ev.prevent_default()
            on:drop=move |ev: web_sys::DragEvent| {
                ev.prevent_default();
                attach_files(st, ev.data_transfer().and_then(|d| d.files()));
            }
        >
            <Show when=move || !st.pending.with(|p| p.is_empty())>
                <ul class="attachments" data-testid="attachments">
                    <For each=move || st.pending.get() key=|a| a.key children=move |a| {
                        let key = a.key;
                        view! {
                            <li>
                                <img data-testid="attachment" src=a.url.clone() alt="attached picture"/>
                                <button type="button" class="remove" aria-label="Remove picture"
                                    on:click=move |_| remove(key)>"×"</button>
                            </li>
                        }
                    }/>
                </ul>
            </Show>
            <div class="composer-row">
                <label class="attach" class:disabled=move || !vision() title="Attach pictures">
                    "🖼"
                    <input type="file" accept="image/*" multiple=true data-testid="attach-input"
                        disabled=move || !vision()
                        on:change=move |ev| {
                            let input: Option<web_sys::HtmlInputElement> =
                                ev.target().and_then(|t| t.dyn_into().ok());
                            if let Some(input) = input {
                                attach_files(st, input.files());
                                input.set_value("");
                            }
                        }/>
                </label>
                <textarea
                    data-testid="composer-input"
                    placeholder=move || if listening() {
                        "Listening…"
                    } else if ready() {
                        "Message qwglm… (paste or drop pictures, or talk)"
                    } else {
                        "Load a model to start chatting"
                    }
                    prop:value=move || text.get()
                    on:input=move |ev| text.set(event_target_value(&ev))
                    on:paste=move |ev: web_sys::ClipboardEvent| {
                        let files = ev.clipboard_data().and_then(|d| d.files());
                        if files.as_ref().is_some_and(|f| f.length() > 0) && vision() {
                            ev.prevent_default();
                            attach_files(st, files);
                        }
                    }
                    on:keydown=move |ev: web_sys::KeyboardEvent| {
                        if ev.key() == "Enter" && !ev.shift_key() {
                            ev.prevent_default();
                            send();
                        }
                    }
                ></textarea>
                <MicButton/>
                <Show
                    when=busy
                    fallback=move || view! {
                        <button type="submit" data-testid="send"
                            disabled=move || !ready() || !(has_content() || st.screen.with(|s| s.is_some()))>"Send"</button>
                    }
                >
                    <button type="button" data-testid="stop" on:click=move |_| st.stop()>"Stop"</button>
                </Show>
            </div>
            <Show when=move || st.voice_notice.get().is_some()>
                <p class="notice" data-testid="voice-notice">{move || st.voice_notice.get().unwrap_or_default()}</p>
            </Show>
        </form>
    }
}
