"""BigGAN (Brock et al. 2019): residual up/down blocks, conditional batch norm fed by a shared
class embedding and a hierarchical latent, self-attention, a projection discriminator, and
spectral norm in both networks. Unconditional when `n_classes` is 0.

Channel plans follow the authors' reference code, so the ImageNet-128 configuration (ch=96)
has their parameter counts.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from pipeline.models.layers import PLAIN_HEAD, HeadOptions, Layers, ProjectionHead

# Per resolution: channel multipliers of each block's input, and of the last block's output.
G_PLANS = {
    16: ([4, 4], 4),  # the 32 px plan less one block: small images such as the digits
    32: ([4, 4, 4], 4),
    64: ([16, 16, 8, 4], 2),
    128: ([16, 16, 8, 4, 2], 1),
    256: ([16, 16, 8, 8, 4, 2], 1),
}
# D: output multipliers of each block; all but the last `D_KEEP[res]` blocks halve the size.
D_PLANS = {
    16: [4, 4, 4, 4],
    32: [4, 4, 4, 4],
    64: [1, 2, 4, 8, 16],
    128: [1, 2, 4, 8, 16, 16],
    256: [1, 2, 4, 8, 8, 16, 16],
}
D_KEEP = {16: 3, 32: 2, 64: 1, 128: 1, 256: 1}
RESOLUTIONS = tuple(G_PLANS)


def check_resolution(resolution: int) -> None:
    if resolution not in G_PLANS:
        raise ValueError(
            f"biggan supports resolutions {', '.join(map(str, RESOLUTIONS))}, got {resolution}"
        )


class ConditionalBatchNorm(nn.Module):
    """Batch norm whose gain and bias are linear functions of a conditioning vector; plain
    batch norm with learned affine parameters when there is no conditioning."""

    def __init__(self, layers: Layers, channels: int, cond_dim: int):
        super().__init__()
        self.bn = nn.BatchNorm2d(channels, affine=cond_dim == 0)
        if cond_dim:
            self.gain = layers.linear(cond_dim, channels, bias=False)
            self.bias = layers.linear(cond_dim, channels, bias=False)

    def forward(self, x: torch.Tensor, cond: torch.Tensor | None) -> torch.Tensor:
        out = self.bn(x)
        if cond is None:
            return out
        gain = 1 + self.gain(cond)[:, :, None, None]
        return out * gain + self.bias(cond)[:, :, None, None]


class SelfAttention(nn.Module):
    """Non-local attention (SAGAN) over positions, with pooled keys/values and a learned
    gate that starts at 0, so the block begins as the identity."""

    def __init__(self, layers: Layers, channels: int):
        super().__init__()
        key, value = max(1, channels // 8), max(1, channels // 2)
        self.theta = layers.conv(channels, key, 1, bias=False)
        self.phi = layers.conv(channels, key, 1, bias=False)
        self.g = layers.conv(channels, value, 1, bias=False)
        self.out = layers.conv(value, channels, 1, bias=False)
        self.gamma = nn.Parameter(torch.zeros(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        # (n, 1 head, positions, channels). SAGAN does not scale the scores (scale 1). A GPU
        # gets a fused kernel that never holds the positions x positions/4 score matrix.
        query = self.theta(x).flatten(2).transpose(1, 2)[:, None]
        key = F.max_pool2d(self.phi(x), 2).flatten(2).transpose(1, 2)[:, None]
        value = F.max_pool2d(self.g(x), 2).flatten(2).transpose(1, 2)[:, None]
        mixed = F.scaled_dot_product_attention(query, key, value, scale=1.0)
        mixed = mixed[:, 0].transpose(1, 2).reshape(n, -1, h, w)
        return x + self.gamma * self.out(mixed)


class GBlock(nn.Module):
    def __init__(self, layers: Layers, c_in: int, c_out: int, cond_dim: int, cond_layers: Layers):
        super().__init__()
        self.bn1 = ConditionalBatchNorm(cond_layers, c_in, cond_dim)
        self.conv1 = layers.conv(c_in, c_out, 3, padding=1)
        self.bn2 = ConditionalBatchNorm(cond_layers, c_out, cond_dim)
        self.conv2 = layers.conv(c_out, c_out, 3, padding=1)
        self.shortcut = layers.conv(c_in, c_out, 1)

    def forward(self, x: torch.Tensor, cond: torch.Tensor | None) -> torch.Tensor:
        h = F.interpolate(F.relu(self.bn1(x, cond)), scale_factor=2, mode="nearest")
        h = self.conv2(F.relu(self.bn2(self.conv1(h), cond)))
        return h + self.shortcut(F.interpolate(x, scale_factor=2, mode="nearest"))


class Generator(nn.Module):
    def __init__(
        self,
        shape,
        z_dim=128,
        ch=64,
        n_classes=0,
        spectral=True,
        attention=0,
        shared_dim=128,
        hierarchical=True,
    ):
        super().__init__()
        channels, resolution = shape[0], shape[-1]
        check_resolution(resolution)
        plan, last = G_PLANS[resolution]
        widths = [m * ch for m in plan] + [last * ch]
        layers = Layers(spectral)
        self.z_dim, self.n_classes = z_dim, n_classes
        self.hierarchical = hierarchical
        # Hierarchical latent: one chunk for the input layer, one for each block.
        self.chunks = len(plan) + 1 if hierarchical else 1
        if z_dim % self.chunks:
            raise ValueError(f"z_dim {z_dim} must split evenly into {self.chunks} chunks")
        chunk = z_dim // self.chunks
        self.shared = nn.Embedding(n_classes, shared_dim) if n_classes and shared_dim else None
        class_dim = (shared_dim if self.shared is not None else n_classes) if n_classes else 0
        cond_dim = class_dim + (chunk if hierarchical else 0)
        # One-hot classes feed plain per-class gains (an embedding, as in the reference code):
        # spectral norm on them would cap how far classes can pull the features apart.
        cond_layers = layers if self.shared is not None else Layers(False)
        self.linear = layers.linear(chunk if hierarchical else z_dim, widths[0] * 16)
        self.blocks = nn.ModuleList()
        size = 4
        for c_in, c_out in zip(widths, widths[1:], strict=False):
            size *= 2
            block = nn.ModuleList([GBlock(layers, c_in, c_out, cond_dim, cond_layers)])
            if size == attention:
                block.append(SelfAttention(layers, c_out))
            self.blocks.append(block)
        self.out_bn = nn.BatchNorm2d(widths[-1])
        self.out_conv = layers.conv(widths[-1], channels, 3, padding=1)

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        if self.n_classes:
            classes = self.shared(y) if self.shared is not None else F.one_hot(y, self.n_classes)
            classes = classes.to(z.dtype)
        zs = z.chunk(self.chunks, dim=1) if self.hierarchical else (z,)
        conds = []
        for i in range(len(self.blocks)):
            parts = ([zs[i + 1]] if self.hierarchical else []) + (
                [classes] if self.n_classes else []
            )
            conds.append(torch.cat(parts, dim=1) if parts else None)
        h = self.linear(zs[0]).view(len(z), -1, 4, 4)
        for block, cond in zip(self.blocks, conds, strict=True):
            h = block[0](h, cond)
            for attention in block[1:]:
                h = attention(h)
        return torch.tanh(self.out_conv(F.relu(self.out_bn(h))))


class DBlock(nn.Module):
    def __init__(
        self, layers: Layers, c_in: int, c_out: int, downsample: bool, preactivation: bool
    ):
        super().__init__()
        self.conv1 = layers.conv(c_in, c_out, 3, padding=1)
        self.conv2 = layers.conv(c_out, c_out, 3, padding=1)
        self.downsample, self.preactivation = downsample, preactivation
        self.shortcut = layers.conv(c_in, c_out, 1) if c_in != c_out or downsample else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu(x) if self.preactivation else x
        h = self.conv2(F.relu(self.conv1(h)))
        if self.downsample:
            h = F.avg_pool2d(h, 2)
        skip = x
        if self.shortcut is not None:
            if self.preactivation:  # the reference order: the input block pools first
                skip = self.shortcut(skip)
                skip = F.avg_pool2d(skip, 2) if self.downsample else skip
            else:
                skip = self.shortcut(F.avg_pool2d(skip, 2) if self.downsample else skip)
        return h + skip


class Discriminator(nn.Module):
    def __init__(
        self, shape, ch=64, n_classes=0, spectral=True, attention=0, head: HeadOptions = PLAIN_HEAD
    ):
        super().__init__()
        channels, resolution = shape[0], shape[-1]
        check_resolution(resolution)
        widths = [channels] + [m * ch for m in D_PLANS[resolution]]
        n_blocks = len(widths) - 1
        layers = Layers(spectral)
        self.blocks = nn.ModuleList()
        size = resolution
        for i, (c_in, c_out) in enumerate(zip(widths, widths[1:], strict=False)):
            downsample = i < n_blocks - D_KEEP[resolution]
            self.blocks.append(DBlock(layers, c_in, c_out, downsample, preactivation=i > 0))
            size //= 2 if downsample else 1
            if size == attention and downsample:
                self.blocks.append(SelfAttention(layers, c_out))
        self.head = ProjectionHead(layers, widths[-1], n_classes, head)

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        h = x
        for block in self.blocks:
            h = block(h)
        return self.head(F.relu(h).sum(dim=(2, 3)), y)
