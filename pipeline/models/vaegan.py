"""VAE-GAN (Larsen et al. 2016): an encoder in front of the DCGAN generator, which doubles as
the VAE's decoder; reconstructions are compared in a feature layer of the discriminator
instead of pixel by pixel, and the latent is pulled towards N(0, I) by a KL term."""

from __future__ import annotations

import torch
from torch import nn

from pipeline.models import dcgan


class Encoder(nn.Module):
    """Images -> the mean and log-variance of q(z | x)."""

    def __init__(self, shape, z_dim: int, width: int):
        super().__init__()
        self.features = dcgan.Discriminator(shape, width, spectral=False).body  # down to 4x4
        channels = width * 2 ** dcgan.stages(shape[-1])
        self.out = nn.Linear(channels * 16, 2 * z_dim)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean, log_var = self.out(self.features(x).flatten(1)).chunk(2, dim=1)
        return mean, log_var.clamp(-10, 10)


class Generator(dcgan.Generator):
    """The decoder G(z, y) (sampled like any generator) plus `encode`."""

    def __init__(self, shape, z_dim, width, n_classes=0, spectral=False):
        super().__init__(shape, z_dim, width, n_classes, spectral)
        self.encoder = Encoder(shape, z_dim, width)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """A reparameterised sample z ~ q(z | x), with the mean and log-variance."""
        mean, log_var = self.encoder(x)
        return mean + torch.randn_like(mean) * (0.5 * log_var).exp(), mean, log_var


def kl_to_standard_normal(mean: torch.Tensor, log_var: torch.Tensor) -> torch.Tensor:
    """KL(N(mean, exp(log_var)) || N(0, I)), averaged over batch and latent dimensions."""
    return 0.5 * (mean.pow(2) + log_var.exp() - 1 - log_var).mean()
