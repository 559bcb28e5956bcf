#!/usr/bin/env bash
# Builds the static site into dist/: the UI and engine-worker wasm (cargo + wasm-bindgen),
# index.html, worker.js, CSS and Cloudflare Pages headers. Works offline once the crates are
# fetched. Usage: scripts/build-site.sh [--dev]
set -euo pipefail
cd "$(dirname "$0")/.."
profile=release
[[ "${1:-}" == "--dev" ]] && profile=dev
out_profile=$([[ $profile == dev ]] && echo debug || echo release)
cargo build -p qwglm-app --target wasm32-unknown-unknown --profile "$profile" --bins
rm -rf dist
mkdir -p dist/pkg
for bin in qwglm-app qwglm-worker; do
  wasm-bindgen --target web --no-typescript --out-dir dist/pkg "target/wasm32-unknown-unknown/$out_profile/$bin.wasm"
done
cp public/index.html public/worker.js public/mic-worklet.js public/_headers dist/
cp style/style.css dist/
# Silero VAD's weights (MIT, 1.2 MB) for turn-taking, from the silero-vad wheel on PyPI.
scripts/speech-weights.sh --vad-only
mkdir -p dist/vad
cp target/speech-weights/silero-vad/silero_vad_16k.safetensors dist/vad/
echo "site built in dist/ ($(du -sh dist | cut -f1))"
