"""Which kernels run: bitwise-reproducible ones (`train.deterministic`), for exact-resume checks
and debugging, or else the fastest the GPU has."""

from __future__ import annotations

import os

import torch


def use_deterministic_kernels() -> None:
    """Deterministic kernels only (an op that has none raises instead of silently varying) and
    no cuDNN autotuning. cuBLAS also needs a fixed workspace, set before CUDA starts. On CPU,
    results are then bitwise reproducible for a given number of threads."""
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(True)
    torch.backends.cudnn.benchmark = False


def use_fast_kernels() -> None:
    """On a GPU: cuDNN times the convolution algorithms once per shape and keeps the fastest (a
    GAN step repeats the same shapes), and float32 matrix products and convolutions run on TF32
    tensor cores (inputs rounded to a 10-bit mantissa, float32 accumulation)."""
    if torch.cuda.is_available():
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True


def use_kernels(deterministic: bool) -> None:
    """`train.deterministic`'s choice, for a training process and the bench's plain loop alike."""
    if deterministic:
        use_deterministic_kernels()
    else:
        use_fast_kernels()
