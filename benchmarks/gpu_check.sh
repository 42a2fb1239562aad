#!/usr/bin/env bash
# The GPU path in one script, for a CUDA machine: the GPU-marked tests, then training
# throughput, time_ratio and MFU of BigGAN-128 (bf16) and the 32 px DCGAN on this card, then
# BigGAN-128 compiled.
# Prints the tables the README reports; writes bench/gpu-check/throughput.json.
set -euo pipefail
cd "$(dirname "$0")/.."
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
python -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)"
python -m pytest -q -m gpu tests
ganpipe bench throughput --configs biggan-128,dcgan-32 --steps "${STEPS:-20}" \
  --out bench/gpu-check train.mixed_precision=bf16
# The same BigGAN-128 step under torch.compile (train.compile), if time allows: COMPILE=0 skips.
if [ "${COMPILE:-1}" = 1 ]; then
  ganpipe bench throughput --configs biggan-128 --steps "${STEPS:-20}" \
    --out bench/gpu-check-compiled train.mixed_precision=bf16 train.compile=true
fi
