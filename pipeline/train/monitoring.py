"""Health figures logged beside the losses: spectral-norm sigmas and peak memory (gradient
norms come from the steps, which compute them for the finiteness check anyway)."""

from __future__ import annotations

import resource
import sys

import torch
from torch import nn
from torch.nn.utils.parametrize import is_parametrized


@torch.no_grad()
def spectral_sigmas(model: nn.Module) -> list[float]:
    """The largest singular value of each spectrally normalised weight before normalisation,
    as the power iteration estimates it (u^T W v): BigGAN watches these blow up before a
    collapse."""
    sigmas = []
    for module in model.modules():
        if not is_parametrized(module, "weight"):
            continue
        for norm in module.parametrizations.weight:
            if hasattr(norm, "_u"):  # torch's spectral norm parametrization
                matrix = norm._reshape_weight_to_matrix(module.parametrizations.weight.original)
                sigmas.append(float(norm._u @ matrix @ norm._v))
    return sigmas


def sigma_stats(models: dict[str, nn.Module]) -> dict[str, float]:
    stats = {}
    for name, model in models.items():
        sigmas = spectral_sigmas(model)
        if sigmas:
            stats[f"sn/{name}_max"] = max(sigmas)
            stats[f"sn/{name}_mean"] = sum(sigmas) / len(sigmas)
    return stats


def peak_memory_gb(device: torch.device) -> dict[str, float]:
    """The accelerator's peak allocated memory, and the process's peak resident memory."""
    stats = {}
    if device.type == "cuda":
        stats["memory/gpu_peak_gb"] = torch.cuda.max_memory_allocated(device) / 1e9
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
    stats["memory/host_peak_gb"] = peak / (1e9 if sys.platform == "darwin" else 1e6)
    return stats
