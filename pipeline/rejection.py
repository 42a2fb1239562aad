"""Discriminator rejection sampling (Azadi et al. 2019): fewer off-mode samples from a trained
GAN without retraining it.

A discriminator ends training near equilibrium with its generator, so its logits barely
separate good samples from bad ones. `fit_critic` fine-tunes a copy of it with the logistic
loss against the frozen EMA generator until its logit estimates log(p_data / p_G);
`rejection_sample` then keeps each candidate x with probability (ratio(x) / M)^(1/temperature),
M a high quantile of the ratio. Temperature 1 aims at the data distribution itself; lower
temperatures sharpen further, at the price of more candidates per kept sample.
"""

from __future__ import annotations

import copy
import itertools
import math
from collections.abc import Iterator
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from pipeline.config import RejectionConfig
from pipeline.data.reader import training_batches
from pipeline.optimizers import adam
from pipeline.sampling import latents, truncation_of

CALIBRATION = 10_000  # candidates whose ratios set M
# M is the ratios' 99th percentile, not their maximum (an outlier of a noisy estimate); the
# top 1% of candidates are always kept, so sampling ends after at most about 100 n candidates.
QUANTILE = 0.99


def fit_critic(
    discriminator: nn.Module,
    generator: nn.Module,
    data_dir: str | Path,
    settings: RejectionConfig,
    seed: int,
    device: str | torch.device = "cpu",
) -> nn.Module:
    """A copy of `discriminator` trained to tell the training data from `generator`'s samples
    (labels shared, as in training); starting from D matters: a fresh network does not resolve
    the fine structure in the same number of steps."""
    critic = copy.deepcopy(discriminator).to(device).train()
    generator = generator.to(device).eval()
    torch.manual_seed(seed)
    batches = training_batches(data_dir, settings.critic_batch, seed=f"critic/{seed}")
    optimizer = adam(
        critic.parameters(), settings.critic_lr, (0.5, 0.999), torch.device(device).type
    )
    for step in range(settings.critic_steps):
        batch = next(batches)
        real = batch.x.to(device)
        y = batch.y.to(device) if generator.n_classes else None
        with torch.no_grad():
            fake = generator(torch.randn(len(real), generator.z_dim, device=device), y)
        loss = F.softplus(-critic(real, y)).mean() + F.softplus(critic(fake, y)).mean()
        for group in optimizer.param_groups:
            group["lr"] = settings.critic_lr * (1 - step / settings.critic_steps)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return critic.eval()


@torch.no_grad()
def rejection_sample(
    generator: nn.Module,
    critic: nn.Module,
    n: int,
    seed: int,
    temperature: float,
    batch_size: int = 500,
    device: str | torch.device = "cpu",
    truncation: float = 0.0,
) -> tuple[torch.Tensor, torch.Tensor | None, float]:
    """`n` kept samples (CPU float32), their labels if conditional, and the share of candidates
    kept. The same seed gives the same samples."""
    generator, critic = generator.to(device).eval(), critic.to(device).eval()
    draws = torch.Generator().manual_seed(seed)

    def candidates(
        z_truncation: float,
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]]:
        while True:
            z, y = latents(batch_size, generator.z_dim, generator.n_classes, draws, z_truncation)
            y = None if y is None else y.to(device)
            x = generator(z.to(device), y)
            yield x.float().cpu(), None if y is None else y.cpu(), critic(x, y).float().cpu()

    with truncation_of(generator, truncation) as z_truncation:
        stream = candidates(z_truncation)
        calibration = list(itertools.islice(stream, math.ceil(CALIBRATION / batch_size)))
        top = torch.quantile(torch.cat([logits.flatten() for *_, logits in calibration]), QUANTILE)
        kept_x, kept_y, kept, tried = [], [], 0, 0
        for x, y, logits in itertools.chain(calibration, stream):
            chance = torch.exp(((logits.flatten() - top) / temperature).clamp(max=0))
            keep = torch.rand(len(chance), generator=draws) < chance
            kept_x.append(x[keep])
            kept_y.append(None if y is None else y[keep])
            kept, tried = kept + int(keep.sum()), tried + len(keep)
            if kept >= n:
                break
    samples = torch.cat(kept_x)[:n]
    labels = None if generator.n_classes == 0 else torch.cat(kept_y)[:n]
    return samples, labels, kept / tried
