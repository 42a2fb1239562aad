"""Layer flavours chosen in one place: spectral-normed or plain, so every block asks here."""

from __future__ import annotations

from dataclasses import dataclass

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


def minibatch_stddev(x: torch.Tensor, group: int) -> torch.Tensor:
    """Append one channel (or feature): the standard deviation of the features over each
    group of `group` consecutive samples, averaged, so D can see a batch's lack of variety
    (a collapsed G). Groups are consecutive so that a batch of reals followed by as many
    fakes never mixes the two, as long as the batch size is a multiple of `group`."""
    n = len(x)
    g = min(group, n)
    while n % g:
        g -= 1
    grouped = x.float().view(n // g, g, *x.shape[1:])
    std = (grouped.var(dim=1, unbiased=False) + 1e-8).sqrt()
    std = std.flatten(1).mean(1).to(x.dtype)  # (n / g,)
    extra = std.repeat_interleave(g).view(n, 1, *([1] * (x.dim() - 2)))
    return torch.cat([x, extra.expand(n, 1, *x.shape[2:])], dim=1)


@dataclass(frozen=True)
class HeadOptions:
    """Anti-collapse options of every discriminator's output head."""

    stddev_group: int = 0  # minibatch-stddev feature over groups of this size; 0 = off
    dropout: float = 0.0  # dropout on the pooled features


PLAIN_HEAD = HeadOptions()


class ProjectionHead(nn.Module):
    """D's output: a linear score plus, when conditional, <embed(y), h> (Miyato & Koyama 2018).
    Optionally dropout on h and a minibatch-stddev feature beside it."""

    def __init__(
        self, layers: Layers, features: int, n_classes: int, options: HeadOptions = PLAIN_HEAD
    ):
        super().__init__()
        self.stddev_group = options.stddev_group
        self.dropout = nn.Dropout(options.dropout) if options.dropout else nn.Identity()
        self.linear = layers.linear(features + (self.stddev_group > 0), 1)
        self.embed = layers.embedding(n_classes, features) if n_classes else None

    def forward(self, h: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        h = self.dropout(h)
        scored = minibatch_stddev(h, self.stddev_group) if self.stddev_group else h
        out = self.linear(scored).squeeze(1)
        if self.embed is not None:
            out = out + (self.embed(y) * h).sum(dim=1)
        return out


class Packed(nn.Module):
    """PacGAN (Lin et al. 2018): D judges `m` samples at once, concatenated along channels
    (the inner D is built with m times the channels), so it can penalise a G whose samples
    look alike. A pack is judged under the class of its first sample."""

    def __init__(self, discriminator: nn.Module, m: int):
        super().__init__()
        self.inner, self.m = discriminator, m

    def pack(self, x: torch.Tensor) -> torch.Tensor:
        if len(x) % self.m:
            raise ValueError(f"a batch of {len(x)} does not split into packs of {self.m}")
        return x.reshape(len(x) // self.m, self.m * x.shape[1], *x.shape[2:])

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        return self.inner(self.pack(x), None if y is None else y[:: self.m])

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner.features(self.pack(x))

    def set_stage(self, level: int, alpha: float) -> None:
        self.inner.set_stage(level, alpha)


class LatentInput(nn.Module):
    """G's input: z, with a learned class embedding concatenated when conditional."""

    def __init__(self, z_dim: int, n_classes: int):
        super().__init__()
        self.embed = nn.Embedding(n_classes, z_dim) if n_classes else None
        self.out_features = 2 * z_dim if n_classes else z_dim

    def forward(self, z: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        return z if self.embed is None else torch.cat([z, self.embed(y)], dim=1)
