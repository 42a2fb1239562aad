"""Precision, recall, density and coverage of generated features against real ones.

Precision/recall: Kynkäänniemi et al. 2019; density/coverage: Naeem et al. 2020. All four use
k-nearest-neighbour balls around samples, computed with batched distance matrices on the
features' device.
"""

from __future__ import annotations

import torch


def _kth_neighbour_radius(x: torch.Tensor, k: int) -> torch.Tensor:
    """Distance from each row of x to its k-th nearest other row."""
    distances = torch.cdist(x, x)
    return distances.topk(k + 1, dim=1, largest=False).values[:, k]  # column 0 is itself


def prdc(real: torch.Tensor, fake: torch.Tensor, k: int = 5) -> dict[str, float]:
    real, fake = real.double(), fake.double()
    real_radius = _kth_neighbour_radius(real, k)
    fake_radius = _kth_neighbour_radius(fake, k)
    real_to_fake = torch.cdist(real, fake)  # (R, F)
    inside_real = real_to_fake < real_radius[:, None]  # fake j inside real i's ball
    inside_fake = real_to_fake < fake_radius[None, :]  # real i inside fake j's ball
    return {
        "precision": inside_real.any(dim=0).double().mean().item(),
        "recall": inside_fake.any(dim=1).double().mean().item(),
        "density": (inside_real.sum(dim=0).double() / k).mean().item(),
        "coverage": (real_to_fake.min(dim=1).values < real_radius).double().mean().item(),
    }
