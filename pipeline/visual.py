"""Pictures of samples: image grids and 2D scatter plots, drawn with Pillow alone."""

from __future__ import annotations

import math

import numpy as np
import torch
from PIL import Image, ImageDraw


def image_grid(images: torch.Tensor, columns: int | None = None, pad: int = 2) -> Image.Image:
    """(N, C, H, W) in [-1, 1] -> one RGB/grey picture with `columns` images per row."""
    n, c, h, w = images.shape
    columns = columns or math.ceil(math.sqrt(n))
    rows = math.ceil(n / columns)
    pixels = ((images.float().clamp(-1, 1) + 1) * 127.5).round().byte().cpu().numpy()
    canvas = np.zeros((rows * (h + pad) + pad, columns * (w + pad) + pad, c), np.uint8)
    for i, image in enumerate(pixels):
        top, left = pad + (i // columns) * (h + pad), pad + (i % columns) * (w + pad)
        canvas[top : top + h, left : left + w] = image.transpose(1, 2, 0)
    grid = Image.fromarray(canvas[..., 0] if c == 1 else canvas)
    scale = max(1, 256 // (h + pad))  # small images are enlarged so a person can see them
    return grid.resize((grid.width * scale, grid.height * scale), Image.Resampling.NEAREST)


def scatter(points: torch.Tensor, means: np.ndarray | None = None, size: int = 512) -> Image.Image:
    """2D samples as black dots, with the true mixture means (if given) as red crosses."""
    xy = points.float().cpu().numpy()
    ref = means if means is not None else xy
    extent = float(np.abs(ref).max()) * 1.25 + 1e-6
    canvas = Image.new("RGB", (size, size), "white")
    draw = ImageDraw.Draw(canvas)

    def to_pixels(p: np.ndarray) -> np.ndarray:
        return (np.stack([p[:, 0], -p[:, 1]], axis=1) / extent + 1) * size / 2

    for x, y in to_pixels(xy):
        draw.point((float(x), float(y)), fill="black")
    for x, y in to_pixels(means) if means is not None else []:
        draw.line((x - 5, y, x + 5, y), fill="red")
        draw.line((x, y - 5, x, y + 5), fill="red")
    return canvas
