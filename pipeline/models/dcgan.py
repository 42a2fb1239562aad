"""DCGAN (Radford et al. 2016) for square images, 8 px and up; class-conditional on request."""

from __future__ import annotations

import math

import torch
from torch import nn

from pipeline.models.layers import PLAIN_HEAD, HeadOptions, LatentInput, Layers, ProjectionHead


def stages(resolution: int) -> int:
    """Number of 2x resolution changes between 4x4 and the image."""
    count = math.log2(resolution) - 2
    if resolution < 8 or not count.is_integer():
        raise ValueError(f"dcgan needs a power-of-two resolution >= 8, got {resolution}")
    return int(count)


class Generator(nn.Module):
    def __init__(self, shape, z_dim, width, n_classes=0, spectral=False):
        super().__init__()
        channels, resolution = shape[0], shape[-1]
        self.z_dim, self.n_classes = z_dim, n_classes
        layers = Layers(spectral)
        n = stages(resolution)
        widths = [width * 2**k for k in reversed(range(n + 1))]  # e.g. 8w at 4x4 ... w at the top
        self.latent = LatentInput(z_dim, n_classes)
        self.project = layers.linear(self.latent.out_features, widths[0] * 16)
        blocks: list[nn.Module] = [nn.Unflatten(1, (widths[0], 4, 4)), nn.BatchNorm2d(widths[0])]
        for c_in, c_out in zip(widths, widths[1:], strict=False):
            blocks += [
                nn.ReLU(),
                layers.conv_transpose(c_in, c_out, 4, stride=2, padding=1, bias=False),
                nn.BatchNorm2d(c_out),
            ]
        blocks += [nn.ReLU(), layers.conv(widths[-1], channels, 3, padding=1), nn.Tanh()]
        self.body = nn.Sequential(*blocks)

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        return self.body(self.project(self.latent(z, y)))


class Discriminator(nn.Module):
    def __init__(self, shape, width, n_classes=0, spectral=True, head: HeadOptions = PLAIN_HEAD):
        super().__init__()
        channels, resolution = shape[0], shape[-1]
        layers = Layers(spectral)
        n = stages(resolution)
        widths = [width * 2**k for k in range(n + 1)]
        blocks: list[nn.Module] = [layers.conv(channels, widths[0], 3, padding=1)]
        for c_in, c_out in zip(widths, widths[1:], strict=False):
            blocks += [nn.LeakyReLU(0.2), layers.conv(c_in, c_out, 4, stride=2, padding=1)]
        blocks.append(nn.LeakyReLU(0.2))
        self.body = nn.Sequential(*blocks)
        self.head = ProjectionHead(layers, widths[-1], n_classes, head)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The last feature maps (VAE-GAN measures reconstructions here)."""
        return self.body(x)

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        h = self.features(x).sum(dim=(2, 3))  # global sum pooling, as in projection D
        return self.head(h, y)
