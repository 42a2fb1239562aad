"""Mode counting on 2D Gaussian mixtures (BENCHMARKS.md section 1)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

HIGH_QUALITY_STDS = 3.0


def mixture_metrics(points: torch.Tensor, means: np.ndarray, std: float) -> dict[str, Any]:
    """Modes covered, % high-quality samples (within 3 std of the nearest mean), reverse KL."""
    means_t = torch.as_tensor(means, dtype=torch.float64)
    distances = torch.cdist(points.double(), means_t)  # isotropic: Mahalanobis = euclid / std
    nearest = distances.min(dim=1)
    high_quality = nearest.values / std < HIGH_QUALITY_STDS
    counts = torch.bincount(nearest.indices[high_quality], minlength=len(means)).double()
    k = len(means)
    if counts.sum() == 0:
        reverse_kl = float("inf")
    else:
        q = counts / counts.sum()
        q = q[q > 0]
        reverse_kl = (q * torch.log(k * q)).sum().item()
    return {
        "modes": int((counts > 0).sum()),
        "modes_total": k,
        "high_quality_percent": 100.0 * high_quality.double().mean().item(),
        "reverse_kl": reverse_kl,
        "mode_histogram": counts.long().tolist(),  # high-quality samples per mode
    }
