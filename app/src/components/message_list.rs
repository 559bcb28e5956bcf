//! The conversation: user and assistant messages, streamed text, per-turn errors with retry.

use leptos::prelude::*;
use qwglm_engine::chat::Role;

use crate::state::{use_app_state, Entry, EntryState};

/// Every message of the conversation, oldest first.
#[component]
pub fn MessageList() -> impl IntoView {
    let st = use_app_state();
    view! {
        <ol class="messages" data-testid="messages">
            <For each=move || st.entries.get() key=|e| e.key children=move |e| view! { <MessageView entry=e/> }/>
        </ol>
    }
}

/// One message; assistant messages show streaming state, numbers, and errors with a retry.
#[component]
fn MessageView(
    /// The message to show.
    entry: Entry,
) -> impl IntoView {
    let st = use_app_state();
    let (role_class, testid) = match entry.role {
        Role::User => ("user", "message-user"),
        Role::Assistant => ("assistant", "message-assistant"),
        Role::System => ("system", "message-system"),
    };
    let state_attr = move || match entry.state.get() {
        EntryState::Streaming => "streaming",
        EntryState::Done => "done",
        EntryState::Stopped => "stopped",
        EntryState::Failed => "failed",
    };
    let stats = move || {
        entry.stats.get().map(|s| {
            format!(
                "{} prompt tokens · prefill {:.0} ms{} · {} tokens at {:.1} tok/s{}",
                s.prompt_tokens,
                s.prefill_ms,
                if s.vision_ms > 0.0 { format!(" (vision {:.0} ms)", s.vision_ms) } else { String::new() },
                s.generated_tokens,
                s.decode_tokens_per_s,
                if s.stop == "cancelled" { " · stopped" } else { "" }
            )
        })
    };
    view! {
        <li class=format!("message {role_class}") data-testid=testid data-state=state_attr>
            <div class="images">
                {entry.images.get_value().into_iter().map(|a| view! {
                    <img data-testid="message-image" src=a.url alt="picture sent with the message"/>
                }).collect_view()}
            </div>
            <div class="text" data-testid="message-text">{move || entry.text.get()}</div>
            <Show when=move || entry.state.get() == EntryState::Streaming>
                <span class="typing" aria-label="generating">"▍"</span>
            </Show>
            <Show when=move || entry.stats.get().is_some()>
                <div class="stats" data-testid="message-stats">{stats}</div>
            </Show>
            <Show when=move || entry.state.get() == EntryState::Failed>
                <div class="turn-error" data-testid="turn-error">
                    {move || format!("This reply failed: {}", entry.error.get().unwrap_or_default())}
                    <button data-testid="retry" on:click=move |_| st.request_reply()>"Retry"</button>
                </div>
            </Show>
        </li>
    }
}
