"""Data sources: what `ganpipe data build SOURCE` can read, each opened as a `Source`.

A source lists, per split, the items to store (image files or uint8 arrays; for 2D mixtures,
float points) and their labels. The shard writer turns them into WebDataset shards.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.data import images
from pipeline.errors import UserError

DIGITS_TEST_FRACTION = 0.2
DIGITS_SPLIT_SEED = 0  # part of the dataset's definition, not of a run: the split never moves
SOURCES = ("digits", "stacked-digits", "mog-ring", "mog-grid", "image-folder", "cifar10", "npz")


@dataclass
class Split:
    items: Sequence[Any]  # image paths or uint8 arrays; or an (N, 2) float array of points
    labels: np.ndarray  # (N,) int64


@dataclass
class Source:
    name: str
    kind: str  # "image" or "points"
    shape: list[int]  # per sample: [C, H, W] or [2]
    classes: int
    splits: dict[str, Split]
    info: dict[str, Any] = field(default_factory=dict)  # extra index.json fields


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
    """The bundled digits as uint8 images (N, 8, 8), split into train and test."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    pixels = np.round(digits.images * 255.0 / 16.0).astype(np.uint8)
    x_train, x_test, y_train, y_test = train_test_split(
        pixels,
        digits.target.astype(np.int64),
        test_size=DIGITS_TEST_FRACTION,
        random_state=DIGITS_SPLIT_SEED,
        stratify=digits.target,
    )
    return {"train": x_train, "test": x_test}, {"train": y_train, "test": y_test}


def resize_digits(pixels: np.ndarray, resolution: int) -> np.ndarray:
    """uint8 (N, 8, 8) -> uint8 (N, R, R), exactly as the shards store them."""
    from PIL import Image

    square = (images.to_square(Image.fromarray(p), resolution, "L") for p in pixels)
    return np.stack([np.asarray(im) for im in square])


def digits(resolution: int) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    pixels, labels = digits_raw()
    return {s: (resize_digits(pixels[s], resolution), labels[s]) for s in pixels}


def stacked_digits(sizes: dict[str, int], seed: int) -> dict[str, Split]:
    """Three bundled digits, drawn independently from the same split, in the R, G and B
    channels (uint8 (N, 8, 8, 3)); class 100 a + 10 b + c, 1000 classes (BENCHMARKS.md
    section 2)."""
    pixels, labels = digits_raw()
    rng = np.random.default_rng(seed)
    splits = {}
    for name, n in sizes.items():
        picks = rng.integers(0, len(pixels[name]), size=(n, 3))
        stacked = np.stack([pixels[name][picks[:, k]] for k in range(3)], axis=-1)
        splits[name] = Split(list(stacked), labels[name][picks] @ np.array([100, 10, 1]))
    return splits


def open_source(
    name: str,
    *,
    path: Path | None = None,
    resolution: int = 32,
    channels: int = 3,
    n_train: int = 100_000,
    n_test: int = 2500,
    seed: int = 0,
) -> Source:
    """Open a source by name; `path` is the folder, archive or file the source reads."""
    image_shape = [channels, resolution, resolution]
    if name == "digits":
        pixels, labels = digits_raw()
        splits = {s: Split(list(pixels[s]), labels[s]) for s in pixels}
        return Source(name, "image", [1, resolution, resolution], 10, splits)
    if name == "stacked-digits":
        splits = stacked_digits({"train": n_train, "test": n_test}, seed)
        return Source(name, "image", [3, resolution, resolution], 1000, splits, {"seed": seed})
    if name in ("mog-ring", "mog-grid"):
        mix, rng = mixture(name), np.random.default_rng(seed)
        splits = {s: Split(*mix.sample(n, rng)) for s, n in (("train", n_train), ("test", n_test))}
        info = {"mixture": {"means": mix.means.tolist(), "std": mix.std}, "seed": seed}
        return Source(name, "points", [2], len(mix.means), splits, info)
    if path is None:
        flag = "--archive FILE" if name == "cifar10" else "a path"
        raise UserError(f"data build {name} needs {flag}")
    if name == "image-folder":
        items, class_names = images.image_folder(path)
        paths, labels = zip(*items, strict=True)
        split = Split(list(paths), np.asarray(labels, dtype=np.int64))
        info = {"class_names": class_names}
        return Source(name, "image", image_shape, len(class_names), {"train": split}, info)
    if name == "cifar10":
        arrays, class_names = images.cifar10(path)
        splits = {s: Split(list(x), y) for s, (x, y) in arrays.items()}
        return Source(name, "image", image_shape, 10, splits, {"class_names": class_names})
    if name == "npz":
        pixels, labels = images.npz(path)
        classes = int(labels.max()) + 1 if labels is not None else 0
        labels = labels if labels is not None else np.zeros(len(pixels), np.int64)
        return Source(name, "image", image_shape, classes, {"train": Split(list(pixels), labels)})
    raise UserError(f"unknown data source {name!r}; choose one of {', '.join(SOURCES)}")
