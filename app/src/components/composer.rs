//! The message box with Send and Stop.

use leptos::prelude::*;

use crate::state::{use_app_state, ModelStatus};

/// Text input; Enter sends, Shift+Enter starts a new line.
#[component]
pub fn Composer() -> impl IntoView {
    let st = use_app_state();
    let text = RwSignal::new(String::new());
    let ready = move || matches!(st.status.get(), ModelStatus::Ready(_));
    let busy = move || st.running.get().is_some();
    let send = move || {
        let t = text.get_untracked();
        if ready() && !busy() && !t.trim().is_empty() {
            text.set(String::new());
            st.send_message(t);
        }
    };
    view! {
        <form class="composer" on:submit=move |ev| { ev.prevent_default(); send(); }>
            <textarea
                data-testid="composer-input"
                placeholder=move || if ready() { "Message qwglm…" } else { "Load a model to start chatting" }
                prop:value=move || text.get()
                on:input=move |ev| text.set(event_target_value(&ev))
                on:keydown=move |ev: web_sys::KeyboardEvent| {
                    if ev.key() == "Enter" && !ev.shift_key() {
                        ev.prevent_default();
                        send();
                    }
                }
            ></textarea>
            <Show
                when=busy
                fallback=move || view! {
                    <button type="submit" data-testid="send" disabled=move || !ready() || text.get().trim().is_empty()>"Send"</button>
                }
            >
                <button type="button" data-testid="stop" on:click=move |_| st.stop()>"Stop"</button>
            </Show>
        </form>
    }
}
