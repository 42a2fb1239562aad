"""Augmentation of real training images in the loader: flips, random resized crops, rotations.

Applied per sample, with a random generator seeded from the sample's place in the stream
(pipeline/data/stream.py), so a run's data stream is reproducible and resumable.
"""

from __future__ import annotations

import math
import random

import torch
import torch.nn.functional as F

from pipeline.config import AugmentConfig


def active(config: AugmentConfig) -> bool:
    return config.flip or config.crop_scale < 1.0 or config.rotate > 0.0


def augment(x: torch.Tensor, config: AugmentConfig, rng: random.Random) -> torch.Tensor:
    """One image (C, H, W) in [-1, 1] -> an augmented image of the same shape."""
    if config.flip and rng.random() < 0.5:
        x = x.flip(-1)
    if config.crop_scale < 1.0:
        x = random_resized_crop(x, config.crop_scale, rng)
    if config.rotate > 0.0:
        x = rotate(x, rng.uniform(-config.rotate, config.rotate))
    return x


def random_resized_crop(x: torch.Tensor, min_scale: float, rng: random.Random) -> torch.Tensor:
    """A crop covering [min_scale, 1] of the area, aspect ratio in [3/4, 4/3], resized back."""
    _, h, w = x.shape
    area = rng.uniform(min_scale, 1.0) * h * w
    ratio = math.exp(rng.uniform(math.log(3 / 4), math.log(4 / 3)))
    ch = min(h, max(1, round(math.sqrt(area / ratio))))
    cw = min(w, max(1, round(math.sqrt(area * ratio))))
    top, left = rng.randint(0, h - ch), rng.randint(0, w - cw)
    crop = x[None, :, top : top + ch, left : left + cw]
    return F.interpolate(crop, size=(h, w), mode="bilinear", align_corners=False, antialias=True)[0]


def rotate(x: torch.Tensor, degrees: float) -> torch.Tensor:
    """Rotate about the centre; pixels from outside repeat the border (the background)."""
    angle = math.radians(degrees)
    cos, sin = math.cos(angle), math.sin(angle)
    theta = torch.tensor([[cos, -sin, 0.0], [sin, cos, 0.0]], dtype=x.dtype)[None]
    grid = F.affine_grid(theta, [1, *x.shape], align_corners=False)
    return F.grid_sample(x[None], grid, padding_mode="border", align_corners=False)[0]
