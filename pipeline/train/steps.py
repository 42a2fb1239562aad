"""The two halves of a GAN iteration. Both accumulate gradients over micro-batches and sync
them across processes only on the last one."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import nullcontext
from dataclasses import dataclass, field

import torch
from accelerate import Accelerator
from torch import nn

from pipeline.data.reader import Batch
from pipeline.train.losses import AdversarialLoss


@dataclass
class GAN:
    """The prepared (possibly DDP-wrapped) models and optimizers, plus the bare modules."""

    accelerator: Accelerator
    G: nn.Module
    D: nn.Module
    opt_g: torch.optim.Optimizer
    opt_d: torch.optim.Optimizer
    loss: AdversarialLoss
    grad_accum: int
    g_terms: list = field(default_factory=list)  # callables: GAN -> extra generator loss
    batches: Iterator[Batch] | None = None  # the real-data stream

    def __post_init__(self):
        self.g_bare = self.accelerator.unwrap_model(self.G)
        self.d_bare = self.accelerator.unwrap_model(self.D)
        self.n_classes = self.g_bare.n_classes

    def latents(self, n: int, labels: torch.Tensor | None = None):
        device = self.accelerator.device
        z = torch.randn(n, self.g_bare.z_dim, device=device)
        if not self.n_classes:
            return z, None
        if labels is None:
            labels = torch.randint(0, self.n_classes, (n,), device=device)
        return z, labels

    def sync_on_last(self, model: nn.Module, i: int):
        last = i == self.grad_accum - 1
        return nullcontext() if last else self.accelerator.no_sync(model)


def discriminator_step(gan: GAN, shards: set[str]) -> dict:
    """One D update on real batches and fresh fakes (G is not differentiated)."""
    acc = gan.accelerator
    gan.opt_d.zero_grad(set_to_none=True)
    stats = torch.zeros(3, device=acc.device)
    for i in range(gan.grad_accum):
        batch = next(gan.batches)
        shards.update(batch.shards)
        real = batch.x.to(acc.device, non_blocking=True)
        z, y = gan.latents(len(real), batch.y.to(acc.device) if gan.n_classes else None)
        with torch.no_grad(), acc.autocast():
            fake = gan.g_bare(z, y)
        # Real and fake go through D in one call: one forward per backward, as DDP expects.
        with gan.sync_on_last(gan.D, i):
            with acc.autocast():
                both_y = None if y is None else torch.cat([y, y])
                logits = gan.D(torch.cat([real, fake.to(real.dtype)]), both_y).float()
            real_logits, fake_logits = logits.split(len(real))
            loss = gan.loss.d_loss(real_logits, fake_logits)
            acc.backward(loss / gan.grad_accum)
        stats += torch.stack(
            [loss.detach(), real_logits.mean().detach(), fake_logits.mean().detach()]
        )
    gan.opt_d.step()
    return {"loss_d": stats[0], "d_real": stats[1], "d_fake": stats[2], "n": gan.grad_accum}


def generator_step(gan: GAN, batch_size: int) -> dict:
    """One G update through a frozen D (bare module: D's weights get no gradient, no sync)."""
    acc = gan.accelerator
    gan.opt_g.zero_grad(set_to_none=True)
    gan.d_bare.requires_grad_(False)
    total = torch.zeros((), device=acc.device)
    for i in range(gan.grad_accum):
        z, y = gan.latents(batch_size)
        with gan.sync_on_last(gan.G, i):
            with acc.autocast():
                loss = gan.loss.g_loss(gan.d_bare(gan.G(z, y), y).float())
                extra = sum(term(gan) for term in gan.g_terms)
            acc.backward((loss + extra) / gan.grad_accum)
        total += loss.detach()
    gan.opt_g.step()
    gan.d_bare.requires_grad_(True)
    return {"loss_g": total, "n": gan.grad_accum}
