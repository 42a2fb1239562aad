"""Terms added to the generator's loss, each an object built from the config (see toolbox.py)
and called with the GAN (models, data stream) and the step at every generator step; a term
that skips a step (lazy regularization) returns None."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from pipeline.models.layers import trainable_weight
from pipeline.models.vaegan import kl_to_standard_normal


def orthogonal_penalty(model: nn.Module) -> torch.Tensor:
    """BigGAN's orthogonal regularization: the sum of ||W W^T * (1 - I)||_F^2 over the weights
    of conv and linear layers (filters flattened). Only the off-diagonal part is penalised, so
    each filter's norm stays free."""
    total = torch.zeros((), device=next(model.parameters()).device)
    for module in model.modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            weight = trainable_weight(module).flatten(1)
            gram = weight @ weight.t()
            off_diagonal = gram * (1 - torch.eye(len(gram), device=gram.device))
            total = total + off_diagonal.pow(2).sum()
    return total


@dataclass(frozen=True)
class Orthogonal:
    weight: float

    def __call__(self, gan, step: int) -> torch.Tensor:
        return self.weight * orthogonal_penalty(gan.g_bare)


@dataclass(frozen=True)
class ModeSeeking:
    """Mao et al. 2019: reward G for images that differ as much as their latents do, weight /
    (mean|G(z1) - G(z2)| / mean|z1 - z2|), on `pairs` pairs that share their classes."""

    weight: float
    pairs: int

    def __call__(self, gan, step: int) -> torch.Tensor:
        z1, y = gan.latents(self.pairs)
        z2 = torch.randn_like(z1)
        images = gan.g_bare(torch.cat([z1, z2]), None if y is None else torch.cat([y, y]))
        first, second = images.float().chunk(2)
        image_distance = (first - second).abs().flatten(1).mean(1)
        ratio = image_distance / (z1 - z2).abs().mean(1)
        return self.weight / (ratio.mean() + 1e-5)


@dataclass(frozen=True)
class VAEReconstruction:
    """VAE-GAN's encoder terms on a real batch: reconstruction error in D's last feature
    maps, the KL of q(z|x) to the prior, and the adversarial loss of the reconstructions.
    (Encoder and decoder share one optimizer, so the adversarial term also reaches the
    encoder, as in single-objective implementations.)"""

    recon_weight: float
    kl_weight: float

    def __call__(self, gan, step: int) -> torch.Tensor:
        real, y = gan.real(next(gan.batches))
        z, mean, log_var = gan.g_bare.encode(real)
        reconstruction = gan.g_bare(z, y)
        with torch.no_grad():
            target = gan.d_bare.features(real).float()
        recon = F.mse_loss(gan.d_bare.features(reconstruction).float(), target)
        box = gan.toolbox
        with torch.no_grad():
            real_logits = gan.d_bare(box.augment(real), y).float()
        fake_logits = gan.d_bare(box.augment(reconstruction), y).float()
        adversarial = box.loss.g_loss(fake_logits, real_logits)
        kl = kl_to_standard_normal(mean.float(), log_var.float())
        return self.recon_weight * recon + self.kl_weight * kl + adversarial


def path_lengths(images: torch.Tensor, ws: torch.Tensor, directions: torch.Tensor) -> torch.Tensor:
    """Per sample, the length of J^T u for the image-space directions u (J: d images / d ws),
    over w's width, averaged over the layers' ws as StyleGAN2 does; kept in the graph."""
    (grads,) = torch.autograd.grad((images * directions).sum(), ws, create_graph=True)
    return grads.float().square().sum(2).mean(1).sqrt()


class PathLength(nn.Module):
    """StyleGAN2's path-length regularization: for random image-space directions u, the
    length of J_w^T u (J: the synthesis network's Jacobian at w) is pulled towards its running
    mean, so that a fixed step in w moves the image by about as much anywhere. Lazy: every
    `every`-th G step, on `batch` latents, scaled by `every`. The mean is a buffer: checkpointed,
    and averaged across processes so every rank holds the same one."""

    def __init__(self, weight: float, every: int, batch: int, decay: float = 0.01):
        super().__init__()
        self.weight, self.every, self.batch, self.decay = weight, every, batch, decay
        self.register_buffer("mean", torch.zeros(()))
        self.reduce = lambda t: t  # replaced by a cross-process mean under data parallelism

    def forward(self, gan, step: int) -> torch.Tensor | None:
        if step % self.every:
            return None
        z, y = gan.latents(self.batch)
        generator = gan.g_bare
        ws = generator.ws(z, y)
        images = generator.synthesis(ws, "random")
        directions = torch.randn_like(images) / math.sqrt(images.shape[2] * images.shape[3])
        lengths = path_lengths(images, ws, directions)
        self.mean.copy_(self.mean.lerp(self.reduce(lengths.mean().detach()), self.decay))
        return self.weight * self.every * (lengths - self.mean).square().mean()
