"""Adversarial losses, each a pair of functions of D's logits (computed in float32)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

Tensor = torch.Tensor


@dataclass(frozen=True)
class AdversarialLoss:
    d_loss: Callable[[Tensor, Tensor], Tensor]  # (logits on real, logits on fake) -> scalar
    g_loss: Callable[[Tensor], Tensor]  # logits on fake -> scalar


HINGE = AdversarialLoss(
    d_loss=lambda real, fake: F.relu(1.0 - real).mean() + F.relu(1.0 + fake).mean(),
    g_loss=lambda fake: -fake.mean(),
)

# Goodfellow et al. 2014 with the non-saturating generator objective: -log D(G(z)).
NON_SATURATING = AdversarialLoss(
    d_loss=lambda real, fake: F.softplus(-real).mean() + F.softplus(fake).mean(),
    g_loss=lambda fake: F.softplus(-fake).mean(),
)

LOSSES = {"hinge": HINGE, "nonsat": NON_SATURATING}
