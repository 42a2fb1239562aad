"""Stored records -> samples -> batches.

A record holds one PNG image, or a block of raw uint8 images or of 2D points (see
`shards.layout`). Samples stay as stored (PNG bytes, array rows) until `decode`, so a stream
that skips samples to reach a resume position does not pay for decoding them.
"""

from __future__ import annotations

import io
import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
from PIL import Image


class Stored(NamedTuple):
    data: bytes | np.ndarray  # PNG bytes, or one uint8 image (C, H, W), or one point
    label: int
    url: str


class Batch(NamedTuple):
    x: torch.Tensor  # images (N, C, H, W) in [-1, 1], or points (N, 2)
    y: torch.Tensor  # class or mixture-component labels (N,)
    shards: frozenset[str]  # names of the shards the batch came from
    reader: int = 0  # which of the rank's readers (loader workers) made it
    position: tuple[int, int] = (0, 0)  # that reader's (pass, sample) after its last sample


def stored_samples(records: Iterator[dict[str, Any]]) -> Iterator[Stored]:
    for record in records:
        url = record["__url__"]
        if "png" in record:
            yield Stored(record["png"], int(record["cls"]), url)
            continue
        labels = _array(record["labels.npy"]).tolist()
        block = _array(record["images.npy" if "images.npy" in record else "points.npy"])
        yield from map(Stored, block, labels, itertools.repeat(url))


def decode(data: bytes | np.ndarray) -> np.ndarray:
    """A uint8 image (C, H, W), or a float32 point, as stored."""
    if isinstance(data, bytes):
        array = np.asarray(Image.open(io.BytesIO(data)))
        return array[None] if array.ndim == 2 else array.transpose(2, 0, 1)
    return data


def to_unit(x: np.ndarray | torch.Tensor) -> torch.Tensor:
    """uint8 pixels -> floats in [-1, 1]; points and already-scaled images pass through."""
    x = torch.as_tensor(x)
    return x.float() / 127.5 - 1.0 if x.dtype == torch.uint8 else x


def collate(samples: list[tuple]) -> Batch:
    """(x, label, url, reader, position) samples -> one Batch, scaled once for the batch."""
    xs, ys, urls, readers, positions = zip(*samples, strict=True)
    x = to_unit(np.stack(xs))
    shards = frozenset(Path(u).name for u in set(urls))
    return Batch(x, torch.tensor(ys), shards, readers[-1], positions[-1])


def _array(data: bytes) -> np.ndarray:
    return np.load(io.BytesIO(data), allow_pickle=False)
