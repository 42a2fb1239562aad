#!/usr/bin/env bash
# The GPU path in one script, for a CUDA machine: the GPU-marked tests; training throughput,
# time_ratio and MFU of the 2D ring MLP (fp32), the 32 px DCGAN and BigGAN-128 (bf16, at two
# batch sizes) on this card; then BigGAN-128 compiled. Each part runs even if one before it
# failed; the exit status says whether all passed.
# Prints the tables the README reports; writes bench/gpu-check*/throughput.json.
# STEPS: steps per timed window of BigGAN-128 (10); REPEATS: timed turns of each side for the
# small models (2: a GPU's speed is steadier than a shared CPU's); COMPILE=0 skips the compiled
# run.
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
python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)"
part "GPU tests" python3 -m pytest -q -m gpu tests
part "ring throughput" ganpipe bench throughput --configs mlp-ring --repeats "${REPEATS:-2}" \
  --out bench/gpu-check-ring
# The DCGAN's step takes milliseconds on a GPU: windows of 200 steps, not a fraction of a second.
part "DCGAN throughput" ganpipe bench throughput --configs dcgan-32 --steps 200 \
  --repeats "${REPEATS:-2}" --out bench/gpu-check-dcgan train.mixed_precision=bf16
# BigGAN-128 steps take a second or more: one turn each. Its config's batch (32 x 8 accumulated),
# then 128 x 2: the same images per step, to see how MFU grows with the batch a kernel sees.
biggan=(--configs biggan-128 --steps "${STEPS:-10}" --repeats 1)
part "BigGAN-128 throughput" ganpipe bench throughput "${biggan[@]}" --out bench/gpu-check \
  train.mixed_precision=bf16
part "BigGAN-128, batch 128" ganpipe bench throughput "${biggan[@]}" --out bench/gpu-check-b128 \
  train.mixed_precision=bf16 train.batch_size=128 train.grad_accum=2
if [ "${COMPILE:-1}" = 1 ]; then
  part "BigGAN-128 compiled" ganpipe bench throughput "${biggan[@]}" \
    --out bench/gpu-check-compiled train.mixed_precision=bf16 train.compile=true
fi
exit "$failed"
