"""Terms added to the discriminator's loss, each an object built from the config and called
at every discriminator step with what that step saw (`Judged`). A term may return None on
steps where it does not apply (lazy regularization)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


@dataclass
class Judged:
    """One discriminator micro-batch: D's inputs (after augmentation) and its logits."""

    D: nn.Module  # the bare discriminator, for terms that need their own forward pass
    real: torch.Tensor
    fake: torch.Tensor
    y: torch.Tensor | None
    real_logits: torch.Tensor
    fake_logits: torch.Tensor
    step: int  # discriminator updates so far


def input_gradient_norm2(D: nn.Module, x: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
    """Per-sample squared norm of dD(x)/dx, kept in the graph so it can be penalised."""
    x = x.detach().requires_grad_(True)
    (grad,) = torch.autograd.grad(D(x, y).float().sum(), x, create_graph=True)
    return grad.float().pow(2).flatten(1).sum(1)


@dataclass
class R1:
    """Mescheder et al. 2018: (gamma / 2) E ||grad D(real)||^2. With `every` k > 1 it runs on
    every k-th step only, scaled by k (StyleGAN2's lazy regularization): the same average
    pull for a k-th of the cost."""

    gamma: float
    every: int = 1

    def __call__(self, judged: Judged) -> torch.Tensor | None:
        if judged.step % self.every:
            return None
        norm2 = input_gradient_norm2(judged.D, judged.real, judged.y)
        return self.gamma / 2 * self.every * norm2.mean()


@dataclass
class GradientPenalty:
    """WGAN-GP (Gulrajani et al. 2017): weight E (||grad D(x_hat)|| - 1)^2 on random points
    x_hat between real and fake samples."""

    weight: float

    def __call__(self, judged: Judged) -> torch.Tensor:
        real, fake = judged.real.detach(), judged.fake.detach()
        shape = (len(real),) + (1,) * (real.dim() - 1)
        mix = torch.rand(shape, device=real.device, dtype=real.dtype)
        between = mix * real + (1 - mix) * fake
        norm = (input_gradient_norm2(judged.D, between, judged.y) + 1e-12).sqrt()
        return self.weight * (norm - 1).pow(2).mean()


class LeCam(nn.Module):
    """Tseng et al. 2021: keeps D's outputs near moving averages of its past outputs on the
    other side, ||D(real) - mean_fake||^2 + ||D(fake) - mean_real||^2 (one-sided), which
    stops D from growing overconfident on small data. The averages are buffers: they are
    checkpointed, and averaged across processes so every rank holds the same ones."""

    def __init__(self, weight: float, decay: float = 0.99):
        super().__init__()
        self.weight, self.decay = weight, decay
        self.register_buffer("means", torch.zeros(2))  # real, fake
        self.register_buffer("started", torch.zeros((), dtype=torch.bool))
        self.reduce = lambda t: t  # replaced by a cross-process mean under data parallelism

    def forward(self, judged: Judged) -> torch.Tensor:
        current = self.reduce(
            torch.stack([judged.real_logits.mean(), judged.fake_logits.mean()]).detach()
        )
        averaged = torch.lerp(current, self.means, self.decay)
        self.means.copy_(torch.where(self.started, averaged, current))
        self.started.fill_(True)
        real_mean, fake_mean = self.means
        penalty = (judged.real_logits - fake_mean).relu().pow(2).mean() + (
            real_mean - judged.fake_logits
        ).relu().pow(2).mean()
        return self.weight * penalty
