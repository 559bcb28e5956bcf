//! Generation settings: temperature (blank = the model's default), the reply length, the
//! context, and the pixel budget of pictures and screen frames.

use leptos::prelude::*;

use crate::state::use_app_state;

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
