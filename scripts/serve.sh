#!/usr/bin/env bash
# Installs what the build needs, builds the site and serves it on http://127.0.0.1:8080.
# The tiny test models are served too, at /models/<name>/resolve/main (try
# http://127.0.0.1:8080/?model=http://127.0.0.1:8080/models/qwen3_vl/resolve/main).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/build-site.sh
cargo build --release -p qwglm-cli
exec target/release/qwglm serve --site dist --models tests/fixtures --host 127.0.0.1 --port "${PORT:-8080}"
