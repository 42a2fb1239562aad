"""Layer flavours chosen in one place: spectral-normed or plain, so every block asks here."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm


class Layers:
    """Builds conv/linear/embedding layers, each wrapped in spectral norm when asked."""

    def __init__(self, spectral: bool):
        self.spectral = spectral

    def _wrap(self, module: nn.Module) -> nn.Module:
        return spectral_norm(module) if self.spectral else module

    def conv(self, *args, **kwargs) -> nn.Module:
        return self._wrap(nn.Conv2d(*args, **kwargs))

    def conv_transpose(self, *args, **kwargs) -> nn.Module:
        return self._wrap(nn.ConvTranspose2d(*args, **kwargs))

    def linear(self, *args, **kwargs) -> nn.Module:
        return self._wrap(nn.Linear(*args, **kwargs))

    def embedding(self, *args, **kwargs) -> nn.Module:
        return self._wrap(nn.Embedding(*args, **kwargs))


def trainable_weight(module: nn.Module) -> torch.Tensor:
    """The weight the optimizer updates: under spectral norm, the un-normalised original."""
    if hasattr(module, "parametrizations"):
        return module.parametrizations.weight.original
    return module.weight


class ProjectionHead(nn.Module):
    """D's output: a linear score plus, when conditional, <embed(y), h> (Miyato & Koyama 2018)."""

    def __init__(self, layers: Layers, features: int, n_classes: int):
        super().__init__()
        self.linear = layers.linear(features, 1)
        self.embed = layers.embedding(n_classes, features) if n_classes else None

    def forward(self, h: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        out = self.linear(h).squeeze(1)
        if self.embed is not None:
            out = out + (self.embed(y) * h).sum(dim=1)
        return out


class LatentInput(nn.Module):
    """G's input: z, with a learned class embedding concatenated when conditional."""

    def __init__(self, z_dim: int, n_classes: int):
        super().__init__()
        self.embed = nn.Embedding(n_classes, z_dim) if n_classes else None
        self.out_features = 2 * z_dim if n_classes else z_dim

    def forward(self, z: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        return z if self.embed is None else torch.cat([z, self.embed(y)], dim=1)
