"""Image sources a user brings: a folder of images, the official CIFAR-10 archive, an .npz.

Every image is made square at the target resolution the same way: the shorter side is scaled
to the resolution (Lanczos when shrinking, bicubic when enlarging), then the centre is
cropped. Small images are stored as raw pixels, larger ones as PNG; both lossless.
"""

from __future__ import annotations

import io
import pickle
import tarfile
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from pipeline.errors import UserError

EXTENSIONS = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"}
SHRINK_FILTER = Image.Resampling.LANCZOS  # antialiased: no moire on photos
ENLARGE_FILTER = Image.Resampling.BICUBIC  # sharper strokes than bilinear, little ringing
FILTERS = (
    f"shorter side to the resolution ({SHRINK_FILTER.name.lower()} when shrinking, "
    f"{ENLARGE_FILTER.name.lower()} when enlarging), centre crop"
)


def to_square(image: Image.Image, resolution: int, mode: str) -> Image.Image:
    image = image.convert(mode)
    w, h = image.size
    scale = resolution / min(w, h)
    if scale != 1:
        size = (max(resolution, round(w * scale)), max(resolution, round(h * scale)))
        image = image.resize(size, SHRINK_FILTER if scale < 1 else ENLARGE_FILTER)
        w, h = image.size
    left, top = (w - resolution) // 2, (h - resolution) // 2
    return image.crop((left, top, left + resolution, top + resolution))


def square(item: Any, resolution: int, mode: str) -> Image.Image:
    """A file path or a uint8 array (H, W) / (H, W, C) -> the square image."""
    image = Image.open(item) if isinstance(item, (str, Path)) else Image.fromarray(item)
    return to_square(image, resolution, mode)


def png_bytes(item: Any, resolution: int, mode: str) -> bytes:
    """The square image as PNG."""
    buffer = io.BytesIO()
    square(item, resolution, mode).save(buffer, format="PNG")
    return buffer.getvalue()


def pixels(item: Any, resolution: int, mode: str) -> np.ndarray:
    """The square image as a uint8 array (C, H, W)."""
    array = np.asarray(square(item, resolution, mode), dtype=np.uint8)
    return array[None] if array.ndim == 2 else array.transpose(2, 0, 1)


def image_folder(root: Path) -> tuple[list[tuple[Path, int]], list[str]]:
    """Images under `root`: one class per subfolder, or unlabelled (class 0) if flat."""
    if not root.is_dir():
        raise UserError(f"image folder {root} does not exist")
    folders = sorted(p for p in root.iterdir() if p.is_dir())
    groups = [(p.name, p) for p in folders] if folders else [("", root)]
    items: list[tuple[Path, int]] = []
    for label, (_, folder) in enumerate(groups):
        files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in EXTENSIONS)
        items += [(p, label) for p in files]
    if not items:
        raise UserError(f"no images ({', '.join(sorted(EXTENSIONS))}) found under {root}")
    return items, [name for name, _ in groups] if folders else []


class _ArraysOnly(pickle.Unpickler):
    """CIFAR-10 ships as pickles: allow numpy arrays and plain containers, never code."""

    ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("_codecs", "encode"),  # bytes inside protocol-2 pickles written by Python 3
    }

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in self.ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}")


CIFAR_BATCHES = {"train": [f"data_batch_{i}" for i in range(1, 6)], "test": ["test_batch"]}


def cifar10(archive: Path) -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], list[str]]:
    """The official `cifar-10-python.tar.gz`: 50,000 train and 10,000 test 32x32 RGB images."""
    if not archive.is_file():
        raise UserError(
            f"CIFAR-10 archive {archive} not found: download cifar-10-python.tar.gz "
            "from the dataset's home page and pass its path with --archive"
        )
    try:
        with tarfile.open(archive) as tar:
            members = {Path(m.name).name: m for m in tar.getmembers() if m.isfile()}
            load = lambda name: _ArraysOnly(tar.extractfile(members[name]), encoding="bytes").load()  # noqa: E731
            meta = load("batches.meta")
            splits = {}
            for split, names in CIFAR_BATCHES.items():
                batches = [load(name) for name in names]
                data = np.concatenate([b[b"data"] for b in batches])
                labels = np.concatenate([np.asarray(b[b"labels"]) for b in batches])
                images = data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)  # rows are CHW
                splits[split] = (
                    np.ascontiguousarray(images, dtype=np.uint8),
                    labels.astype(np.int64),
                )
    except (tarfile.TarError, KeyError, pickle.UnpicklingError, EOFError, ValueError) as err:
        raise UserError(f"{archive} is not the CIFAR-10 python archive ({err})") from None
    return splits, [n.decode() for n in meta[b"label_names"]]


def npz(path: Path) -> tuple[np.ndarray, np.ndarray | None]:
    """`images` (N, H, W), (N, H, W, C) or (N, C, H, W), uint8 or floats in [0, 1] or [-1, 1];
    optional integer `labels` (N,)."""
    if not path.is_file():
        raise UserError(f"npz file {path} not found")
    with np.load(path, allow_pickle=False) as arrays:
        if "images" not in arrays:
            raise UserError(f"{path}: no 'images' array (found: {', '.join(arrays.files)})")
        images = arrays["images"]
        labels = arrays["labels"].astype(np.int64) if "labels" in arrays else None
    if images.ndim == 4 and images.shape[1] in (1, 3) and images.shape[-1] not in (1, 3):
        images = images.transpose(0, 2, 3, 1)  # NCHW -> NHWC
    if images.ndim not in (3, 4) or (images.ndim == 4 and images.shape[-1] not in (1, 3)):
        raise UserError(
            f"{path}: images of shape {images.shape}; expected (N, H, W), "
            "(N, H, W, C) or (N, C, H, W) with 1 or 3 channels"
        )
    if labels is not None and labels.shape != (len(images),):
        raise UserError(f"{path}: labels of shape {labels.shape}, expected ({len(images)},)")
    if images.dtype != np.uint8:
        low = float(images.min())
        scaled = (images + 1) / 2 if low < 0 else images  # [-1, 1] or [0, 1] -> [0, 1]
        images = np.clip(np.round(scaled * 255), 0, 255).astype(np.uint8)
    if images.ndim == 4 and images.shape[-1] == 1:
        images = images[..., 0]
    return images, labels
