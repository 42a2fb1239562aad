"""Draw samples from a generator, reproducibly: the same seed gives the same samples."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn

from pipeline.models import stylegan2


def latents(
    n: int, z_dim: int, n_classes: int, seed: int | torch.Generator, truncation: float = 0.0
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Noise from a private generator (a seed, or one to go on drawing from); classes balanced
    (0, 1, ..., C-1, 0, ...) if conditional. With `truncation` > 0, values beyond +-truncation
    are redrawn (BigGAN's truncation trick: fidelity for variety)."""
    generator = seed if isinstance(seed, torch.Generator) else torch.Generator().manual_seed(seed)
    z = torch.randn(n, z_dim, generator=generator)
    while truncation > 0 and (outside := z.abs() > truncation).any():
        z[outside] = torch.randn(int(outside.sum()), generator=generator)
    return z, torch.arange(n) % n_classes if n_classes else None


@contextmanager
def truncation_of(generator: nn.Module, truncation: float) -> Iterator[float]:
    """What `truncation` means for this generator; yields the threshold left for z. StyleGAN2
    pulls each w towards its tracked mean (psi = truncation in (0, 1); its z is not cut), the
    others redraw z beyond +-truncation. 0 is off for both."""
    if truncation == 0 or not isinstance(generator, stylegan2.Generator):
        yield truncation
        return
    before, generator.truncation = generator.truncation, truncation
    try:
        yield 0.0
    finally:
        generator.truncation = before


@torch.no_grad()
def generate(
    generator: nn.Module,
    n: int,
    seed: int,
    batch_size: int = 500,
    device: str | torch.device = "cpu",
    truncation: float = 0.0,
    share: tuple[int, int] = (0, 1),
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """`n` samples on the CPU (float32), with their labels when the generator is conditional.
    With `share` = (rank, processes), this process draws only batches rank, rank + processes,
    ... of the same `n` (see `interleave`), so the whole does not depend on the split."""
    rank, processes = share
    was_training = generator.training
    generator.eval()
    chunks = []
    with truncation_of(generator, truncation) as z_truncation:
        z, y = latents(n, generator.z_dim, generator.n_classes, seed, z_truncation)
        for i in range(rank * batch_size, n, batch_size * processes):
            yb = None if y is None else y[i : i + batch_size].to(device)
            chunks.append(generator(z[i : i + batch_size].to(device), yb).float().cpu())
    generator.train(was_training)
    return (torch.cat(chunks) if chunks else torch.empty(0)), y  # empty: more ranks than batches


def share_of(rows: torch.Tensor, batch_size: int, share: tuple[int, int]) -> torch.Tensor:
    """This process's part of rows that `generate` spreads over processes (e.g. the labels)."""
    rank, processes = share
    mine = rows.split(batch_size)[rank::processes]
    return torch.cat(mine) if mine else rows[:0]


def interleave(shares: list[torch.Tensor], batch_size: int) -> torch.Tensor:
    """The samples of `generate` in order again, from every rank's share."""
    pieces = itertools.zip_longest(*(share.split(batch_size) for share in shares))
    return torch.cat([piece for batch in pieces for piece in batch if piece is not None])
