//! The storage view: models in the browser's cache with their sizes, a delete button each,
//! the origin's use of its quota and whether storage is persistent.

use leptos::prelude::*;

use crate::components::model_bar::mib;
use crate::state::use_app_state;

#[component]
pub fn StorageView() -> impl IntoView {
    let st = use_app_state();
    let open = RwSignal::new(false);
    let toggle = move |_| {
        open.update(|o| *o = !*o);
        if open.get_untracked() {
            st.refresh_storage();
        }
    };
    let body = move || {
        let Some(view) = st.storage.get() else {
            return view! { <p>"Reading the cache…"</p> }.into_any();
        };
        let quota = match (view.usage, view.quota) {
            (Some(u), Some(q)) => format!("{} used of {} this site may store", mib(u as u64), mib(q as u64)),
            _ => "storage estimate unavailable".into(),
        };
        let persisted = match st.persisted.get() {
            Some(true) => " · persistent",
            Some(false) => " · not persistent (the browser may evict it under pressure)",
            None => "",
        };
        let rows = view
            .models
            .into_iter()
            .map(|m| {
                let repo = m.repo.clone();
                let label = format!("{} @ {}", m.repo.repo, m.repo.revision);
                let size = format!("{} · {} files complete", mib(m.bytes), m.complete_files.len());
                view! {
                    <li data-testid="stored-model">
                        <span class="name">{label}</span>
                        <span class="size">{size}</span>
                        <button data-testid="delete-stored" on:click=move |_| st.delete_stored(repo.clone())>"Delete"</button>
                    </li>
                }
            })
            .collect::<Vec<_>>();
        let empty = rows.is_empty();
        view! {
            <p data-testid="storage-quota">{quota}{persisted}</p>
            <Show when=move || empty><p data-testid="storage-empty">"No models are cached."</p></Show>
            <ul class="stored">{rows}</ul>
        }
        .into_any()
    };
    view! {
        <section class="storage">
            <button data-testid="storage-toggle" on:click=toggle>"Storage"</button>
            <Show when=move || open.get()>
                <div class="storage-view" data-testid="storage-view">{body}</div>
            </Show>
        </section>
    }
}
