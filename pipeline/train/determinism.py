"""Bitwise-reproducible training (`train.deterministic`), for exact-resume checks and debugging."""

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
