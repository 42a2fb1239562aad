"""The bundled data sources: scikit-learn's 8x8 digits and 2D Gaussian mixtures.

Each source returns named splits of (samples, labels) as numpy arrays, ready to be sharded.
Images are uint8 (N, H, W); points are float32 (N, 2).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image

DIGITS_TEST_FRACTION = 0.2
DIGITS_SPLIT_SEED = 0  # part of the dataset's definition, not of a run: the split never moves
# Upsampling an 8x8 digit: bicubic keeps strokes sharper than bilinear and rings less than Lanczos.
RESIZE_FILTER = Image.Resampling.BICUBIC


@dataclass(frozen=True)
class Mixture:
    """A 2D Gaussian mixture with equal weights and isotropic components."""

    means: np.ndarray  # (K, 2)
    std: float

    def sample(self, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        labels = rng.integers(0, len(self.means), size=n)
        points = self.means[labels] + self.std * rng.standard_normal((n, 2))
        return points.astype(np.float32), labels.astype(np.int64)


def mixture(kind: str) -> Mixture:
    """The two standard collapse benchmarks (BENCHMARKS.md section 1)."""
    if kind == "mog-ring":
        angles = 2 * math.pi * np.arange(8) / 8  # 8 distinct means; linspace would repeat one
        return Mixture(np.stack([np.cos(angles), np.sin(angles)], axis=1), std=0.01)
    if kind == "mog-grid":
        axis = np.array([-4.0, -2.0, 0.0, 2.0, 4.0])
        return Mixture(np.array([(x, y) for x in axis for y in axis]), std=0.05)
    raise ValueError(f"unknown mixture {kind!r}")


def digits_raw() -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """The bundled digits as float images in [0, 1] (N, 8, 8), split into train and test."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    images = (digits.images / 16.0).astype(np.float32)
    x_train, x_test, y_train, y_test = train_test_split(
        images,
        digits.target.astype(np.int64),
        test_size=DIGITS_TEST_FRACTION,
        random_state=DIGITS_SPLIT_SEED,
        stratify=digits.target,
    )
    return {"train": x_train, "test": x_test}, {"train": y_train, "test": y_test}


def resize_digits(images: np.ndarray, resolution: int) -> np.ndarray:
    """Float [0, 1] (N, 8, 8) -> uint8 (N, R, R)."""
    as_bytes = np.clip(np.round(images * 255.0), 0, 255).astype(np.uint8)
    if resolution == images.shape[-1]:
        return as_bytes
    size = (resolution, resolution)
    return np.stack(
        [np.asarray(Image.fromarray(im).resize(size, RESIZE_FILTER)) for im in as_bytes]
    )


def digits(resolution: int) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    images, labels = digits_raw()
    return {split: (resize_digits(images[split], resolution), labels[split]) for split in images}


def mixture_splits(kind: str, n_train: int, n_test: int, seed: int) -> dict[str, tuple]:
    rng = np.random.default_rng(seed)
    mix = mixture(kind)
    return {"train": mix.sample(n_train, rng), "test": mix.sample(n_test, rng)}
