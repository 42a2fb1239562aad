#!/usr/bin/env bash
# shellcheck disable=SC2329  # the parts (functions) are called by name, at the end
# The GPU path in one script, for a CUDA machine. Parts, in this order unless named as
# arguments (`bash benchmarks/gpu_check.sh profile compiled` runs those two):
#   tests     the GPU-marked tests
#   ring      throughput, time_ratio of the 2D ring MLP (fp32)
#   dcgan     the same for the 32 px DCGAN (bf16)
#   biggan    BigGAN-128 (bf16) at its config's batch (32 x 8 accumulated), and at 128 x 2:
#             the same images per step, to see how MFU grows with the batch a kernel sees
#   profile   where a step's time goes (GPU busy share, kernel time by kind of work),
#             pipeline beside plain loop, for the DCGAN and BigGAN-128
#   compiled  the DCGAN under CUDA graphs (train.compile_mode=reduce-overhead), BigGAN-128
#             under train.compile
#   ablations the DCGAN and BigGAN-128 without channels_last, then without cuDNN autotuning
#             and TF32 (train.deterministic): each optimisation's effect on this card
# Each part runs even if one before it failed; the exit status says whether all passed.
# Prints the tables the README reports; writes bench/gpu-check*/.
# STEPS: steps per timed window of BigGAN-128 (10); REPEATS: timed turns of each side for the
# small models (2: a GPU's speed is steadier than a shared CPU's).
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

biggan128=(--configs biggan-128 --steps "${STEPS:-10}" --repeats 1)

tests() { part "GPU tests" python3 -m pytest -q -m gpu tests; }
ring() {
  part "ring throughput" ganpipe bench throughput --configs mlp-ring \
    --repeats "${REPEATS:-2}" --out bench/gpu-check-ring
}
# The DCGAN's step takes milliseconds on a GPU: windows of 200 steps, not a fraction of a second.
dcgan() {
  part "DCGAN throughput" ganpipe bench throughput --configs dcgan-32 --steps 200 \
    --repeats "${REPEATS:-2}" --out bench/gpu-check-dcgan train.mixed_precision=bf16
}
biggan() {
  part "BigGAN-128 throughput" ganpipe bench throughput "${biggan128[@]}" --out bench/gpu-check \
    train.mixed_precision=bf16
  part "BigGAN-128, batch 128" ganpipe bench throughput "${biggan128[@]}" \
    --out bench/gpu-check-b128 train.mixed_precision=bf16 train.batch_size=128 train.grad_accum=2
}
profile() {
  part "DCGAN profile" ganpipe bench profile --configs dcgan-32 --steps 50 \
    --out bench/gpu-check-profile train.mixed_precision=bf16
  part "BigGAN-128 profile" ganpipe bench profile --configs biggan-128 --steps 2 --warmup 3 \
    --out bench/gpu-check-profile train.mixed_precision=bf16
}
compiled() {
  part "DCGAN compiled, CUDA graphs" ganpipe bench throughput --configs dcgan-32 --steps 200 \
    --repeats 1 --out bench/gpu-check-dcgan-graphs train.mixed_precision=bf16 \
    train.compile=true train.compile_mode=reduce-overhead
  part "BigGAN-128 compiled" ganpipe bench throughput "${biggan128[@]}" \
    --out bench/gpu-check-compiled train.mixed_precision=bf16 train.compile=true
}
ablations() {
  local without
  for without in train.channels_last=false train.deterministic=true; do
    part "DCGAN, $without" ganpipe bench throughput --configs dcgan-32 --steps 200 --repeats 1 \
      --out "bench/gpu-check-dcgan-without-${without%%=*}" train.mixed_precision=bf16 "$without"
    part "BigGAN-128, $without" ganpipe bench throughput "${biggan128[@]}" \
      --out "bench/gpu-check-without-${without%%=*}" train.mixed_precision=bf16 "$without"
  done
}

parts=("$@")
[ $# -gt 0 ] || parts=(tests ring dcgan biggan profile compiled ablations)
for each in "${parts[@]}"; do
  case $each in
    tests | ring | dcgan | biggan | profile | compiled | ablations) ;;
    *) echo "unknown part '$each': tests ring dcgan biggan profile compiled ablations" && exit 2 ;;
  esac
done
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)"
for each in "${parts[@]}"; do
  "$each"
done
exit "$failed"
