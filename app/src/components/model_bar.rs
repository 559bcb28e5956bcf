//! Model status: where the model comes from, load progress, errors with a retry.

use leptos::prelude::*;

use crate::state::{use_app_state, ModelStatus};

fn mib(b: u64) -> String {
    format!("{:.1} MiB", b as f64 / (1024.0 * 1024.0))
}

/// The model URL field, the Load/Retry button and the current status line.
#[component]
pub fn ModelBar() -> impl IntoView {
    let st = use_app_state();
    let loading = move || matches!(st.status.get(), ModelStatus::Loading { .. });
    let button_label = move || match st.status.get() {
        ModelStatus::Failed(_) => "Retry",
        ModelStatus::Ready(_) => "Reload",
        _ => "Load model",
    };
    let status = move || {
        match st.status.get() {
        ModelStatus::Empty => view! { <span data-testid="model-status" class="status idle">"No model loaded"</span> }.into_any(),
        ModelStatus::Loading { bytes_done, bytes_total, tensor } => {
            let pct = if bytes_total > 0 { 100.0 * bytes_done as f64 / bytes_total as f64 } else { 0.0 };
            view! {
                <span data-testid="model-status" class="status loading">
                    {format!("Loading… {} of {} ({pct:.0}%)", mib(bytes_done), mib(bytes_total))}
                    <progress max="100" value=pct></progress>
                    <span class="tensor">{tensor}</span>
                </span>
            }
            .into_any()
        }
        ModelStatus::Ready(info) => view! {
            <span data-testid="model-status" class="status ready">
                {format!("Ready: {} · {} layers · context {} · {}", info.family, info.layers, info.max_context, info.adapter)}
            </span>
        }
        .into_any(),
        ModelStatus::Failed(msg) => view! {
            <span data-testid="model-status" class="status failed">{format!("Could not load the model: {msg}")}</span>
        }
        .into_any(),
    }
    };
    view! {
        <section class="model-bar">
            <label>
                "Model"
                <input
                    data-testid="model-url"
                    type="url"
                    prop:value=move || st.model_url.get()
                    on:input=move |ev| st.model_url.set(event_target_value(&ev))
                />
            </label>
            <button
                data-testid="load-model"
                disabled=move || loading() || !st.webgpu_available || st.running.get().is_some()
                on:click=move |_| st.load()
            >
                {button_label}
            </button>
            {status}
            <Show when=move || st.engine_error.get().is_some()>
                <span class="status failed" data-testid="engine-error">{move || st.engine_error.get().unwrap_or_default()}</span>
            </Show>
        </section>
    }
}
