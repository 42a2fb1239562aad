"""Progressive growing (Karras et al. 2018): generator and discriminator that grow from 4x4 to
the target resolution, fading each new resolution in with `alpha`; equalized learning rate,
pixel norm and a minibatch-stddev layer.

Both networks speak full resolution at their boundary, so the training loop needs no special
case: G renders at the current stage and upsamples (nearest) to the target size; D averages
its input down to the current stage first. Nearest-up then average-down is the identity, so
D sees exactly the stage-resolution images. The stage is set from the growth schedule with
`set_stage(level, alpha)`.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from pipeline.models.layers import (
    PLAIN_HEAD,
    HeadOptions,
    LatentInput,
    Layers,
    ProjectionHead,
    minibatch_stddev,
)


class EqualLinear(nn.Module):
    """Weights drawn from N(0, 1) and scaled by He's constant at run time, so Adam's
    per-parameter step sizes treat every layer alike."""

    def __init__(self, c_in: int, c_out: int, gain: float = math.sqrt(2)):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(c_out, c_in))
        self.bias = nn.Parameter(torch.zeros(c_out))
        self.scale = gain / math.sqrt(c_in)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight * self.scale, self.bias)


class EqualConv2d(nn.Module):
    def __init__(self, c_in: int, c_out: int, kernel: int, gain: float = math.sqrt(2)):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(c_out, c_in, kernel, kernel))
        self.bias = nn.Parameter(torch.zeros(c_out))
        self.scale = gain / math.sqrt(c_in * kernel * kernel)
        self.padding = kernel // 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight * self.scale, self.bias, padding=self.padding)


def pixel_norm(x: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Normalise each pixel's feature vector to unit average square (replaces batch norm)."""
    return x * torch.rsqrt(x.pow(2).mean(dim=1, keepdim=True) + eps)


def widths(resolution: int, width: int) -> list[int]:
    """Channels at 4, 8, ..., resolution: `8 x width` at low resolutions, halving above 16."""
    levels = int(math.log2(resolution)) - 1
    return [max(1, min(8 * width, 128 * width // (4 * 2**i))) for i in range(levels)]


def levels_for(resolution: int) -> int:
    stages = math.log2(resolution) - 2
    if resolution < 4 or not stages.is_integer():
        raise ValueError(f"progan needs a power-of-two resolution >= 4, got {resolution}")
    return int(stages) + 1


class _Staged(nn.Module):
    def __init__(self, resolution: int):
        super().__init__()
        self.resolution = resolution
        self.levels = levels_for(resolution)
        self.level, self.alpha = self.levels - 1, 1.0  # fully grown unless told otherwise

    def set_stage(self, level: int, alpha: float) -> None:
        self.level, self.alpha = level, alpha


class Generator(_Staged):
    def __init__(self, shape, z_dim=128, width=16, n_classes=0):
        channels, resolution = shape[0], shape[-1]
        super().__init__(resolution)
        self.z_dim, self.n_classes = z_dim, n_classes
        ch = widths(resolution, width)
        self.latent = LatentInput(z_dim, n_classes)
        self.project = EqualLinear(self.latent.out_features, ch[0] * 16, gain=math.sqrt(2) / 4)
        self.first = EqualConv2d(ch[0], ch[0], 3)
        self.blocks = nn.ModuleList(
            nn.ModuleList([EqualConv2d(c_in, c_out, 3), EqualConv2d(c_out, c_out, 3)])
            for c_in, c_out in zip(ch, ch[1:], strict=False)
        )
        self.to_rgb = nn.ModuleList(EqualConv2d(c, channels, 1, gain=1.0) for c in ch)

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        h = self.project(pixel_norm(self.latent(z, y))).view(len(z), -1, 4, 4)
        h = pixel_norm(F.leaky_relu(h, 0.2))
        h = pixel_norm(F.leaky_relu(self.first(h), 0.2))
        previous = h
        for conv1, conv2 in self.blocks[: self.level]:
            previous = h
            h = F.interpolate(h, scale_factor=2, mode="nearest")
            h = pixel_norm(F.leaky_relu(conv1(h), 0.2))
            h = pixel_norm(F.leaky_relu(conv2(h), 0.2))
        image = self.to_rgb[self.level](h)
        if self.level > 0 and self.alpha < 1.0:  # fade the new resolution in
            low = F.interpolate(self.to_rgb[self.level - 1](previous), scale_factor=2)
            image = torch.lerp(low, image, self.alpha)
        return F.interpolate(image, size=self.resolution, mode="nearest")


class Discriminator(_Staged):
    def __init__(self, shape, width=16, n_classes=0, head: HeadOptions = PLAIN_HEAD):
        channels, resolution = shape[0], shape[-1]
        super().__init__(resolution)
        # The paper's minibatch-stddev layer at 4x4 is part of this D: groups of 4 by default.
        self.stddev_group = head.stddev_group or 4
        ch = widths(resolution, width)
        self.from_rgb = nn.ModuleList(EqualConv2d(channels, c, 1) for c in ch)
        # blocks[i] takes resolution 4 * 2^(i+1) down to 4 * 2^i.
        self.blocks = nn.ModuleList(
            nn.ModuleList([EqualConv2d(c_high, c_high, 3), EqualConv2d(c_high, c_low, 3)])
            for c_low, c_high in zip(ch, ch[1:], strict=False)
        )
        self.final_conv = EqualConv2d(ch[0] + 1, ch[0], 3)
        self.final_linear = EqualLinear(ch[0] * 16, ch[0])
        self.head = ProjectionHead(Layers(False), ch[0], n_classes, HeadOptions(0, head.dropout))

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        factor = self.resolution // (4 * 2**self.level)
        x = F.avg_pool2d(x, factor) if factor > 1 else x
        h = F.leaky_relu(self.from_rgb[self.level](x), 0.2)
        for i in reversed(range(self.level)):
            conv1, conv2 = self.blocks[i]
            h = F.leaky_relu(conv2(F.leaky_relu(conv1(h), 0.2)), 0.2)
            h = F.avg_pool2d(h, 2)
            if i == self.level - 1 and self.alpha < 1.0:  # fade: blend with the old entry
                low = F.leaky_relu(self.from_rgb[i](F.avg_pool2d(x, 2)), 0.2)
                h = torch.lerp(low, h, self.alpha)
        h = F.leaky_relu(self.final_conv(minibatch_stddev(h, self.stddev_group)), 0.2)
        h = F.leaky_relu(self.final_linear(h.flatten(1)), 0.2)
        return self.head(h, y)
