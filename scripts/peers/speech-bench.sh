#!/usr/bin/env bash
# On the GPU machine (device tool, carry [".gl", "target/release/qwglm"]): the speech shapes
# through `qwglm bench` and, beside them in the same run, PyTorch + transformers on the same
# shapes (whisper_torch_bench.py).
set -uo pipefail
for f in .gl/*.deb; do dpkg -x "$f" /; done; ldconfig
export VK_DRIVER_FILES=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
B=target/release/qwglm
for s in whisper-tiny whisper-base whisper-small whisper-large-v3-turbo; do
  timeout 120 $B bench --synthetic "$s" --decode-tokens 128 --json 2>/dev/null | tail -1
done
timeout 120 $B bench --synthetic whisper-large-v3-turbo --quant q8_0 --decode-tokens 128 --json 2>/dev/null | tail -1
timeout 300 python3 scripts/peers/whisper_torch_bench.py whisper-tiny whisper-base whisper-small whisper-large-v3-turbo
