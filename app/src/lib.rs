//! The qwglm web app: a Leptos (client-side) chat page whose engine runs in a Web Worker.
//! `main.rs` only mounts [`App`]; the worker binary calls [`worker::start`].

pub mod catalog;
pub mod components;
pub mod protocol;
pub mod state;
pub mod worker;

use leptos::prelude::*;

use crate::components::{
    composer::Composer,
    message_list::MessageList,
    model_bar::{ModelBar, SpeechBar},
    screen_share::ScreenShare,
    settings::Settings,
    storage::StorageView,
};
use crate::state::{provide_app_state, use_app_state};

/// The whole page: model bar, conversation, composer.
#[component]
pub fn App() -> impl IntoView {
    provide_app_state();
    let st = use_app_state();
    view! {
        <div class="app">
            <header class="topbar">
                <h1>"qwglm"</h1>
                <span class="tagline">"private assistant — runs on your GPU, in this tab"</span>
            </header>
            <Show when=move || !st.webgpu_available>
                <div class="banner error" data-testid="webgpu-missing">
                    "WebGPU is not available in this browser, so the model cannot run here. "
                    "Use a recent Chrome, Edge or Safari with WebGPU enabled."
                </div>
            </Show>
            <ModelBar/>
            <SpeechBar/>
            <StorageView/>
            <main class="chat">
                <MessageList/>
            </main>
            <footer class="bottom">
                <Settings/>
                <ScreenShare/>
                <Composer/>
            </footer>
        </div>
    }
}
