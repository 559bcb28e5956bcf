//! Entry point of the engine worker (a module Worker that loads this wasm).

fn main() {
    qwglm_app::worker::start();
}
