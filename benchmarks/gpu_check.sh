#!/usr/bin/env bash
# The GPU path in one script, for a CUDA machine: the GPU-marked tests; training throughput,
# time_ratio and MFU of the 2D ring MLP (fp32), the 32 px DCGAN and BigGAN-128 (bf16) on this
# card; then BigGAN-128 compiled. Each part runs even if one before it failed; the exit status
# says whether all passed.
# Prints the tables the README reports; writes bench/gpu-check*/throughput.json.
# STEPS: steps per timed window of BigGAN-128 (20); REPEATS: timed turns of each side (2:
# a GPU's speed is steadier than a shared CPU's); COMPILE=0 skips the compiled run.
set -uo pipefail
cd "$(dirname "$0")/.." || exit
failed=0

part() {
  local name=$1 started=$SECONDS
  shift
  echo "== $name"
  if "$@"; then
    echo "== $name: passed in $((SECONDS - started)) s"
  else
    echo "== $name: FAILED after $((SECONDS - started)) s"
    failed=1
  fi
}

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
python -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)"
part "GPU tests" python -m pytest -q -m gpu tests
part "ring throughput" ganpipe bench throughput --configs mlp-ring --repeats "${REPEATS:-2}" \
  --out bench/gpu-check-ring
# The DCGAN's step takes milliseconds on a GPU: windows of 200 steps, not a fraction of a second.
part "DCGAN throughput" ganpipe bench throughput --configs dcgan-32 --steps 200 \
  --repeats "${REPEATS:-2}" --out bench/gpu-check-dcgan train.mixed_precision=bf16
part "BigGAN-128 throughput" ganpipe bench throughput --configs biggan-128 --steps "${STEPS:-20}" \
  --repeats "${REPEATS:-2}" --out bench/gpu-check train.mixed_precision=bf16
if [ "${COMPILE:-1}" = 1 ]; then
  part "BigGAN-128 compiled" ganpipe bench throughput --configs biggan-128 \
    --steps "${STEPS:-20}" --repeats 1 --out bench/gpu-check-compiled \
    train.mixed_precision=bf16 train.compile=true
fi
exit "$failed"
