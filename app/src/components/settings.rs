//! Generation settings: temperature (blank = the model's default), the reply length, the
//! context, the pixel budget of pictures and screen frames, and how spoken turns behave.

use leptos::prelude::*;

use crate::state::{use_app_state, SettingsValues};

/// A checkbox bound to one flag of the settings.
fn toggle(testid: &'static str, label: &'static str, flag: fn(&mut SettingsValues) -> &mut bool) -> impl IntoView {
    let st = use_app_state();
    view! {
        <label>
            <input
                data-testid=testid
                type="checkbox"
                prop:checked=move || *flag(&mut st.settings.get())
                on:change=move |ev| st.settings.update(|s| *flag(s) = event_target_checked(&ev))
            />
            {label}
        </label>
    }
}

#[component]
pub fn Settings() -> impl IntoView {
    let st = use_app_state();
    view! {
        <details class="settings">
            <summary>"Settings"</summary>
            <label>
                "Temperature (blank: model default, 0: greedy)"
                <input
                    data-testid="temperature"
                    type="number" step="0.1" min="0" max="2"
                    prop:value=move || st.settings.get().temperature.map(|t| t.to_string()).unwrap_or_default()
                    on:change=move |ev| {
                        let v = event_target_value(&ev).trim().parse::<f32>().ok().filter(|t| t.is_finite() && *t >= 0.0);
                        st.settings.update(|s| s.temperature = v);
                    }
                />
            </label>
            <label>
                "Max reply tokens"
                <input
                    data-testid="max-tokens"
                    type="number" min="1" max="8192"
                    prop:value=move || st.settings.get().max_new_tokens.to_string()
                    on:change=move |ev| {
                        if let Ok(n) = event_target_value(&ev).trim().parse::<usize>() {
                            st.settings.update(|s| s.max_new_tokens = n.clamp(1, 8192));
                        }
                    }
                />
            </label>
            <label>
                "Picture pixel budget (screen frames are downscaled to it)"
                <input
                    data-testid="max-image-pixels"
                    type="number" min="3136" max="16777216" step="1024"
                    prop:value=move || st.settings.get().max_image_pixels.to_string()
                    on:change=move |ev| {
                        if let Ok(n) = event_target_value(&ev).trim().parse::<usize>() {
                            st.settings.update(|s| s.max_image_pixels = n.clamp(3136, 16_777_216));
                        }
                    }
                />
            </label>
            {toggle(
                "send-spoken",
                "Send what I say when I stop talking (else leave it to edit)",
                |s| &mut s.send_spoken,
            )}
            {toggle("live-transcript", "Show the words while I speak", |s| &mut s.live_transcript)}
            {toggle("auto-end", "End my turn when I stop talking (after a click; holding the button keeps it open)", |s| {
                &mut s.auto_end
            })}
            <label>
                "Spoken language (a code such as en or de; blank: detected)"
                <input
                    data-testid="speech-language"
                    type="text" maxlength="16"
                    prop:value=move || st.settings.get().speech_language.unwrap_or_default()
                    on:change=move |ev| {
                        let v = event_target_value(&ev).trim().to_lowercase();
                        st.settings.update(|s| s.speech_language = (!v.is_empty()).then_some(v));
                    }
                />
            </label>
            <label>
                "Context (tokens, applies on load)"
                <input
                    data-testid="context"
                    type="number" min="256" max="32768"
                    prop:value=move || st.max_context.get().to_string()
                    on:change=move |ev| {
                        if let Ok(n) = event_target_value(&ev).trim().parse::<usize>() {
                            st.max_context.set(n.clamp(256, 32768));
                        }
                    }
                />
            </label>
        </details>
    }
}
