"""Precision, recall, density and coverage of generated features against real ones.

Precision/recall (k = 3): Kynkäänniemi et al. 2019; density/coverage (k = 5): Naeem et al.
2020. All four use k-nearest-neighbour balls around samples. Distances are computed in blocks
of rows on the features' device, so 50,000 x 50,000 sets never hold a full distance matrix.
"""

from __future__ import annotations

import torch

BLOCK = 2048


def kth_neighbour_radius(x: torch.Tensor, k: int) -> torch.Tensor:
    """Distance from each row of x to its k-th nearest other row."""
    radii = [
        torch.cdist(rows, x).topk(k + 1, dim=1, largest=False).values[:, k]  # 0 is itself
        for rows in x.split(BLOCK)
    ]
    return torch.cat(radii)


def prdc(real: torch.Tensor, fake: torch.Tensor, k_pr: int = 3, k_dc: int = 5) -> dict[str, float]:
    dtype = torch.float64 if real.device.type == "cpu" else torch.float32
    real, fake = real.to(dtype), fake.to(dtype)
    real_pr, real_dc = kth_neighbour_radius(real, k_pr), kth_neighbour_radius(real, k_dc)
    fake_pr = kth_neighbour_radius(fake, k_pr)
    precise = torch.zeros(len(fake), dtype=torch.bool, device=fake.device)
    density = torch.zeros(len(fake), dtype=dtype, device=fake.device)
    recalled = covered = 0
    for start in range(0, len(real), BLOCK):
        distance = torch.cdist(real[start : start + BLOCK], fake)  # (block of real, F)
        r_pr, r_dc = real_pr[start : start + BLOCK, None], real_dc[start : start + BLOCK, None]
        precise |= (distance < r_pr).any(dim=0)  # fake j inside some real ball
        density += (distance < r_dc).sum(dim=0)
        recalled += int((distance < fake_pr[None, :]).any(dim=1).sum())  # real i in a fake ball
        covered += int((distance.min(dim=1, keepdim=True).values < r_dc).sum())
    return {
        "precision": precise.double().mean().item(),
        "recall": recalled / len(real),
        "density": (density / k_dc).mean().item(),
        "coverage": covered / len(real),
    }
