"""Adam with the fastest update torch has: one fused kernel over every tensor where the device
has it (on the ring's MLP a CPU step takes a quarter of the time of the `foreach` update),
else the `foreach` update (a few kernels over lists of tensors)."""

from __future__ import annotations

from collections.abc import Iterable

import torch

FUSED_DEVICES = ("cpu", "cuda")  # torch's fused Adam kernels, on the devices the project runs


def adam(
    params: Iterable[torch.Tensor],
    lr: float,
    betas: tuple[float, float],
    device_type: str,
    eps: float = 1e-8,
) -> torch.optim.Adam:
    """`device_type`: where the parameters will live (models move to it after this)."""
    params = list(params)
    fused = device_type in FUSED_DEVICES and all(p.is_floating_point() for p in params)
    return torch.optim.Adam(params, lr=lr, betas=betas, eps=eps, fused=fused, foreach=not fused)


def default_device_type() -> str:
    """The device Accelerate will choose for a training process (CUDA when there is one)."""
    return "cuda" if torch.cuda.is_available() else "cpu"
