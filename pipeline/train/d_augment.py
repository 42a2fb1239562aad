"""Augmenting what D sees, real and fake alike, with differentiable operations so G's
gradient passes through them: D cannot memorise a small dataset, and because fakes are
augmented the same way, the augmentations do not leak into what G generates.

- DiffAugment (Zhao et al. 2020): a fixed policy (color, translation, cutout) on every image.
- ADA (Karras et al. 2020): each operation applied to each image with probability p, where p
  follows D's overfitting signal r = E[sign D(real)] towards a target (0.6 in the paper).

Images are in [-1, 1], shape (N, C, H, W).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

Tensor = torch.Tensor


def _uniform(x: Tensor, low: float, high: float) -> Tensor:
    """One random number per image, shaped to broadcast over (C, H, W)."""
    return torch.empty(len(x), 1, 1, 1, device=x.device, dtype=x.dtype).uniform_(low, high)


def brightness(x: Tensor) -> Tensor:
    return x + _uniform(x, -0.5, 0.5)


def saturation(x: Tensor) -> Tensor:
    mean = x.mean(dim=1, keepdim=True)
    return (x - mean) * _uniform(x, 0.0, 2.0) + mean


def contrast(x: Tensor) -> Tensor:
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - mean) * _uniform(x, 0.5, 1.5) + mean


def translation(x: Tensor, ratio: float = 0.125) -> Tensor:
    """Shift each image by up to `ratio` of its size (whole pixels), zero-filling the border."""
    n, _, h, w = x.shape
    limit = torch.tensor([w * ratio, h * ratio], device=x.device).round().clamp(min=1)
    shift = (torch.rand(n, 2, device=x.device) * (2 * limit + 1)).floor() - limit  # in pixels
    theta = torch.zeros(n, 2, 3, device=x.device, dtype=x.dtype)
    theta[:, 0, 0] = theta[:, 1, 1] = 1
    theta[:, :, 2] = -2 * shift.to(x.dtype) / torch.tensor([w, h], device=x.device)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="nearest", padding_mode="zeros", align_corners=False)


def cutout(x: Tensor, ratio: float = 0.5) -> Tensor:
    """Zero a square of `ratio` times the image side at a random place in each image."""
    n, _, h, w = x.shape
    size_h, size_w = max(1, int(h * ratio)), max(1, int(w * ratio))
    top = torch.randint(0, h - size_h + 1, (n, 1, 1), device=x.device)
    left = torch.randint(0, w - size_w + 1, (n, 1, 1), device=x.device)
    rows = torch.arange(h, device=x.device).view(1, h, 1)
    cols = torch.arange(w, device=x.device).view(1, 1, w)
    inside = (rows >= top) & (rows < top + size_h) & (cols >= left) & (cols < left + size_w)
    return x * (~inside).unsqueeze(1).to(x.dtype)


def flip(x: Tensor) -> Tensor:
    return x.flip(3)


def rotate90(x: Tensor) -> Tensor:
    """A quarter, half or three-quarter turn, chosen per image (square images)."""
    turns = torch.randint(1, 4, (len(x),), device=x.device)
    out = x
    for k in (1, 2, 3):
        out = torch.where((turns == k).view(-1, 1, 1, 1), x.rot90(k, dims=(2, 3)), out)
    return out


DIFFAUGMENT = {
    "color": (brightness, saturation, contrast),
    "translation": (translation,),
    "cutout": (cutout,),
}
# ADA's pipeline, in the paper's order, limited to what is exact on small square images.
ADA_OPERATIONS = (flip, rotate90, translation, brightness, contrast, saturation, cutout)


class DiffAugment(nn.Module):
    def __init__(self, policy: list[str]):
        super().__init__()
        unknown = set(policy) - set(DIFFAUGMENT)
        if unknown:
            raise ValueError(f"unknown DiffAugment policy {sorted(unknown)}")
        self.operations = [op for name in policy for op in DIFFAUGMENT[name]]

    def forward(self, x: Tensor) -> Tensor:
        for operation in self.operations:
            x = operation(x)
        return x

    def observe(self, real_logits: Tensor) -> None:
        """A fixed policy does not adapt."""

    def adjust(self, d_step: int) -> None:
        """Nor does it move."""

    def stats(self) -> dict[str, float]:
        return {}


class AdaptiveAugment(nn.Module):
    """ADA: every `interval` D steps, p moves by batch * interval / `images` towards more
    augmentation when r = E[sign D(real)] is above `target` (D is overfitting), less when
    below; so p can go from 0 to 1 in `images` images. p and the running sign sums are
    buffers: checkpointed, and the sums are added across processes so every rank moves p
    alike."""

    def __init__(self, target: float = 0.6, interval: int = 4, images: int = 500_000):
        super().__init__()
        self.target, self.interval, self.images = target, interval, images
        self.register_buffer("p", torch.zeros(()))
        self.register_buffer("signs", torch.zeros(2))  # sum of sign(D(real)), count
        self.register_buffer("last_r", torch.zeros(()))
        self.reduce = lambda t: t  # replaced by a cross-process sum under data parallelism

    def forward(self, x: Tensor) -> Tensor:
        for operation in ADA_OPERATIONS:
            apply = torch.rand(len(x), 1, 1, 1, device=x.device) < self.p
            x = torch.where(apply, operation(x), x)
        return x

    def observe(self, real_logits: Tensor) -> None:
        """Adds a (micro-)batch's signs of D(real) to the sums."""
        self.signs[0] += real_logits.detach().sign().sum().float()
        self.signs[1] += len(real_logits)

    def adjust(self, d_step: int) -> None:
        """After D update `d_step` (counted from the run's start, so a resumed run moves p at
        the same updates as an uninterrupted one): p moves every `interval` updates."""
        if (d_step + 1) % self.interval:
            return
        total, count = self.reduce(self.signs.clone())
        r = total / count
        batch = count / self.interval  # images per D step, over all processes
        step = torch.sign(r - self.target) * batch * self.interval / self.images
        self.p.copy_((self.p + step).clamp(0, 1))
        self.last_r.copy_(r)
        self.signs.zero_()

    def stats(self) -> dict[str, float]:
        return {"ada_p": self.p, "ada_r": self.last_r}
