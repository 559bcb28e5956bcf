//! Model choice and status: the catalogue (each variant with its download size and the GPU
//! memory it needs, shown before downloading), a URL field for a model given by address,
//! download progress with rate and time left, load progress, errors with a retry.

use leptos::prelude::*;

use crate::catalog::{self, CUSTOM_REPO, CUSTOM_URL, SPEECH_VARIANTS, VARIANTS};
use crate::state::{use_app_state, ModelStatus};

pub fn mib(b: u64) -> String {
    format!("{:.1} MiB", b as f64 / (1024.0 * 1024.0))
}

fn duration(s: f64) -> String {
    if s >= 3600.0 {
        format!("{}h {:02}m", (s / 3600.0) as u64, (s % 3600.0 / 60.0) as u64)
    } else if s >= 60.0 {
        format!("{}m {:02}s", (s / 60.0) as u64, (s % 60.0) as u64)
    } else {
        format!("{}s", s.ceil() as u64)
    }
}

/// The status line of a role's model: download and load progress, ready (as `ready` words
/// it), or the failure.
fn status_line<I>(status: ModelStatus<I>, testid: &'static str, failed: &str, ready: impl Fn(I) -> String) -> AnyView {
    match status {
        ModelStatus::Empty => {
            view! { <span data-testid=testid class="status idle">"No model loaded"</span> }.into_any()
        }
        ModelStatus::Downloading { progress: p, rate, eta_s } => {
            let pct = if p.bytes_total > 0 { 100.0 * p.bytes_done as f64 / p.bytes_total as f64 } else { 0.0 };
            let what = match p.stage.as_str() {
                "verifying" => "Checking the stored part of",
                _ => "Downloading",
            };
            let speed = if rate > 0.0 { format!(" · {}/s", mib(rate as u64)) } else { String::new() };
            let eta = eta_s.map(|s| format!(" · {} left", duration(s))).unwrap_or_default();
            view! {
                <span data-testid=testid class="status loading">
                    {format!("{what} {}… {} of {} ({pct:.0}%){speed}{eta}", p.file, mib(p.bytes_done), mib(p.bytes_total))}
                    <progress max="100" value=pct></progress>
                </span>
            }
            .into_any()
        }
        ModelStatus::Loading { bytes_done, bytes_total, tensor } => {
            let pct = if bytes_total > 0 { 100.0 * bytes_done as f64 / bytes_total as f64 } else { 0.0 };
            view! {
                <span data-testid=testid class="status loading">
                    {format!("Loading… {} of {} ({pct:.0}%)", mib(bytes_done), mib(bytes_total))}
                    <progress max="100" value=pct></progress>
                    <span class="tensor">{tensor}</span>
                </span>
            }
            .into_any()
        }
        ModelStatus::Ready(info) => {
            view! { <span data-testid=testid class="status ready">{ready(info)}</span> }.into_any()
        }
        ModelStatus::Failed(msg) => {
            view! { <span data-testid=testid class="status failed">{format!("{failed}: {msg}")}</span> }.into_any()
        }
    }
}

/// The address field shown while `choice` is "by URL".
fn url_field(testid: &'static str, choice: RwSignal<String>, url: RwSignal<String>) -> impl IntoView {
    view! {
        <Show when=move || choice.get() == CUSTOM_URL>
            <input
                data-testid=testid
                type="url"
                prop:value=move || url.get()
                on:input=move |ev| url.set(event_target_value(&ev))
            />
        </Show>
    }
}

/// The speech recognizer's picker (each with its download size and GPU memory), its Load
/// button and status, and the GPU memory all loaded models hold.
#[component]
pub fn SpeechBar() -> impl IntoView {
    let st = use_app_state();
    let busy = move || st.speech_status.with(ModelStatus::is_busy);
    let label = move || st.speech_status.with(|s| s.button_label("Load speech"));
    let options = SPEECH_VARIANTS.iter().map(|v| view! { <option value=v.id>{v.label}</option> }).collect::<Vec<_>>();
    let details = move || {
        catalog::speech_variant(&st.speech_choice.get()).map(|v| {
            view! {
                <span class="variant-info" data-testid="speech-info">
                    {format!("{} · download {:.0} MB · about {:.0} MB of GPU memory", v.repo, v.download_mb, v.gpu_mb)}
                </span>
            }
        })
    };
    let status = move || {
        status_line(st.speech_status.get(), "speech-status", "Could not load the speech model", |info| {
            let langs = if info.multilingual { "multilingual" } else { "English" };
            format!("Ready: {} · {langs} · {}", info.family, info.adapter)
        })
    };
    let memory = move || {
        st.memory.get().filter(|m| m.chat + m.speech > 0).map(|m| {
            view! {
                <span class="memory" data-testid="gpu-memory">
                    {format!("GPU memory: {} (chat {} · speech {})", mib(m.chat + m.speech), mib(m.chat), mib(m.speech))}
                </span>
            }
        })
    };
    view! {
        <section class="model-bar speech-bar">
            <label>
                "Speech"
                <select
                    data-testid="speech-choice"
                    prop:value=move || st.speech_choice.get()
                    on:change=move |ev| st.speech_choice.set(event_target_value(&ev))
                >
                    {options}
                    <option value=CUSTOM_URL>"Another recognizer by URL…"</option>
                </select>
            </label>
            {url_field("speech-url", st.speech_choice, st.speech_url)}
            <button
                data-testid="load-speech"
                disabled=move || busy() || !st.webgpu_available || st.listening.with(Option::is_some)
                on:click=move |_| st.load_speech()
            >
                {label}
            </button>
            {details}
            {status}
            {memory}
        </section>
    }
}

/// The model picker, the Load/Retry button and the current status line.
#[component]
pub fn ModelBar() -> impl IntoView {
    let st = use_app_state();
    let busy = move || st.status.with(ModelStatus::is_busy);
    let button_label = move || st.status.with(|s| s.button_label("Load model"));
    let custom_repo = st.custom_repo.get_value();
    let options = VARIANTS
        .iter()
        .map(|v| view! { <option value=v.id>{format!("{} · {}", v.model, v.label)}</option> })
        .collect::<Vec<_>>();
    let details = move || {
        let choice = st.model_choice.get();
        catalog::variant(&choice).map(|v| {
            let ctx = st.max_context.get();
            view! {
                <span class="variant-info" data-testid="variant-info">
                    {format!(
                        "{} · download {:.2} GB · about {:.1} GB of GPU memory at {} tokens of context",
                        v.repo,
                        v.download_gb,
                        v.gpu_gb(ctx),
                        ctx
                    )}
                </span>
            }
        })
    };
    let status = move || {
        status_line(st.status.get(), "model-status", "Could not load the model", |info| {
            format!("Ready: {} · {} layers · context {} · {}", info.family, info.layers, info.max_context, info.adapter)
        })
    };
    view! {
        <section class="model-bar">
            <label>
                "Model"
                <select
                    data-testid="model-choice"
                    prop:value=move || st.model_choice.get()
                    on:change=move |ev| st.model_choice.set(event_target_value(&ev))
                >
                    {options}
                    {custom_repo.map(|(repo, gguf)| view! {
                        <option value=CUSTOM_REPO>{format!("{repo}{}", gguf.map(|g| format!(" · {g}")).unwrap_or_default())}</option>
                    })}
                    <option value=CUSTOM_URL>"Another model by URL…"</option>
                </select>
            </label>
            {url_field("model-url", st.model_choice, st.model_url)}
            <button
                data-testid="load-model"
                disabled=move || busy() || !st.webgpu_available || st.running.get().is_some()
                on:click=move |_| st.load()
            >
                {button_label}
            </button>
            {details}
            {status}
            <Show when=move || st.engine_error.get().is_some()>
                <span class="status failed" data-testid="engine-error">{move || st.engine_error.get().unwrap_or_default()}</span>
            </Show>
        </section>
    }
}
