"""Adversarial losses, each a pair of functions of D's logits (computed in float32).

`g_loss` also takes the logits on real data: only relativistic losses use them, and the
generator step computes them only for losses that ask (`uses_real_in_g`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

Tensor = torch.Tensor


@dataclass(frozen=True)
class AdversarialLoss:
    d_loss: Callable[[Tensor, Tensor], Tensor]  # (logits on real, logits on fake) -> scalar
    g_loss: Callable[[Tensor, Tensor | None], Tensor]  # (on fake, on real or None) -> scalar
    uses_real_in_g: bool = False


HINGE = AdversarialLoss(
    d_loss=lambda real, fake: F.relu(1.0 - real).mean() + F.relu(1.0 + fake).mean(),
    g_loss=lambda fake, real=None: -fake.mean(),
)

# Goodfellow et al. 2014 with the non-saturating generator objective: -log D(G(z)).
NON_SATURATING = AdversarialLoss(
    d_loss=lambda real, fake: F.softplus(-real).mean() + F.softplus(fake).mean(),
    g_loss=lambda fake, real=None: F.softplus(-fake).mean(),
)

# Arjovsky et al. 2017: D is a critic; pair it with the gradient penalty (Gulrajani et al.).
WASSERSTEIN = AdversarialLoss(
    d_loss=lambda real, fake: fake.mean() - real.mean(),
    g_loss=lambda fake, real=None: -fake.mean(),
)

# Mao et al. 2017, targets a=0 (fake), b=1 (real), c=1 (what G wants D to say).
LEAST_SQUARES = AdversarialLoss(
    d_loss=lambda real, fake: 0.5 * ((real - 1).pow(2).mean() + fake.pow(2).mean()),
    g_loss=lambda fake, real=None: 0.5 * (fake - 1).pow(2).mean(),
)

LOSSES = {
    "hinge": HINGE,
    "nonsat": NON_SATURATING,
    "wgan": WASSERSTEIN,
    "lsgan": LEAST_SQUARES,
}


def relativistic(base: AdversarialLoss) -> AdversarialLoss:
    """Relativistic average GAN (Jolicoeur-Martineau 2019): D judges whether real data looks
    more real than the average fake, and vice versa; G gets both halves, with roles swapped."""

    def d_loss(real: Tensor, fake: Tensor) -> Tensor:
        return base.d_loss(real - fake.mean(), fake - real.mean())

    def g_loss(fake: Tensor, real: Tensor | None) -> Tensor:
        return base.d_loss(fake - real.mean(), real - fake.mean())

    return AdversarialLoss(d_loss, g_loss, uses_real_in_g=True)


def adversarial_loss(name: str, is_relativistic: bool) -> AdversarialLoss:
    return relativistic(LOSSES[name]) if is_relativistic else LOSSES[name]
