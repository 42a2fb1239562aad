"""MLP generator and discriminator for 2D point data (the Gaussian-mixture benchmarks)."""

from __future__ import annotations

import torch
from torch import nn

from pipeline.models.layers import PLAIN_HEAD, HeadOptions, LatentInput, Layers, ProjectionHead


class Generator(nn.Module):
    def __init__(self, shape, z_dim, width, depth, n_classes=0, spectral=False):
        super().__init__()
        self.z_dim, self.n_classes = z_dim, n_classes
        layers = Layers(spectral)
        self.latent = LatentInput(z_dim, n_classes)
        blocks: list[nn.Module] = []
        size = self.latent.out_features
        for _ in range(depth):
            blocks += [layers.linear(size, width), nn.ReLU()]
            size = width
        blocks.append(layers.linear(size, shape[0]))
        self.body = nn.Sequential(*blocks)

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        return self.body(self.latent(z, y))


class Discriminator(nn.Module):
    def __init__(
        self, shape, width, depth, n_classes=0, spectral=False, head: HeadOptions = PLAIN_HEAD
    ):
        super().__init__()
        layers = Layers(spectral)
        blocks: list[nn.Module] = []
        size = shape[0]
        for _ in range(depth):
            blocks += [layers.linear(size, width), nn.LeakyReLU(0.2)]
            size = width
        self.body = nn.Sequential(*blocks)
        self.head = ProjectionHead(layers, size, n_classes, head)

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        return self.head(self.body(x), y)
