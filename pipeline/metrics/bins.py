"""Number of statistically different bins (Richardson & Weiss 2018): k-means cells of the
real features; a cell is different when the share of generated samples falling in it differs
from the real share by a two-proportion z-test at level alpha. A collapsed generator leaves
cells empty and crowds others."""

from __future__ import annotations

import torch


def kmeans(x: torch.Tensor, k: int, seed: int = 0, iterations: int = 30) -> torch.Tensor:
    """(k, d) centroids by Lloyd's algorithm from k-means++ seeding (seeded, deterministic)."""
    x = x.double()
    draws = torch.Generator().manual_seed(seed)
    centroids = [x[torch.randint(len(x), (1,), generator=draws)].squeeze(0)]
    nearest = torch.cdist(x, centroids[0][None]).squeeze(1) ** 2
    for _ in range(1, k):  # k-means++: far points are likelier seeds
        pick = torch.multinomial(nearest / nearest.sum(), 1, generator=draws)
        centroids.append(x[pick].squeeze(0))
        nearest = torch.minimum(nearest, torch.cdist(x, x[pick]).squeeze(1) ** 2)
    centres = torch.stack(centroids)
    for _ in range(iterations):
        cell = torch.cdist(x, centres).argmin(1)
        counts = torch.bincount(cell, minlength=k).double()
        sums = torch.zeros_like(centres).index_add_(0, cell, x)
        moved = torch.where(counts[:, None] > 0, sums / counts.clamp(min=1)[:, None], centres)
        if torch.equal(moved, centres):
            break
        centres = moved
    return centres


def cell_shares(x: torch.Tensor, centres: torch.Tensor) -> torch.Tensor:
    cell = torch.cdist(x.double(), centres).argmin(1)
    return torch.bincount(cell, minlength=len(centres)).double() / len(x)


def different_bins(
    real_shares: torch.Tensor, n_real: int, fake: torch.Tensor, centres: torch.Tensor,
    alpha: float = 0.05,
) -> float:  # fmt: skip
    """The share of cells whose generated share differs significantly from the real one."""
    fake_shares = cell_shares(fake, centres)
    n_fake = len(fake)
    pooled = (real_shares * n_real + fake_shares * n_fake) / (n_real + n_fake)
    spread = (pooled * (1 - pooled) * (1 / n_real + 1 / n_fake)).sqrt()
    z = (real_shares - fake_shares).abs() / spread.clamp(min=1e-12)
    critical = torch.distributions.Normal(0.0, 1.0).icdf(torch.tensor(1 - alpha / 2))
    different = (z > critical) & (spread > 0)
    return different.double().mean().item()
