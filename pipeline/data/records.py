"""Stored records -> samples -> batches.

A record holds one PNG image, or a block of raw uint8 images or of 2D points (see
`shards.layout`). Samples stay as stored (PNG bytes, array rows) until `decoded`, so a stream
that skips samples to reach a resume position does not pay for decoding them. Bad records and
samples are skipped and counted (pipeline/data/problems.py).
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

from pipeline.data.problems import BadRecord, Problems

CHANNELS = {"L": 1, "RGB": 3}  # PIL modes of the images `ganpipe data build` writes


class Expected(NamedTuple):
    """What index.json promises of every sample."""

    shape: list[int]
    classes: int  # labels lie in [0, classes)


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
    skipped: int = 0  # bad samples that reader has met so far


def stored_samples(
    records: Iterator[dict[str, Any]], expected: Expected, problems: Problems
) -> Iterator[Stored]:
    """The samples of each record; a record that is unreadable, unlabelled or not what the
    index promises is skipped and counted."""
    for record in records:
        try:
            stored = list(_checked(record, expected))
        except BadRecord as bad:
            where = f"{Path(record['__url__']).name} (record {record.get('__key__')})"
            problems.skip(bad.count, where, bad.why)
            continue
        yield from stored


def _checked(record: dict[str, Any], expected: Expected) -> Iterator[Stored]:
    url, shape = record["__url__"], expected.shape
    if "png" in record:
        if "cls" not in record:
            raise BadRecord("no label (.cls)")
        try:
            header = Image.open(io.BytesIO(record["png"]))  # reads the header only
        except (OSError, ValueError) as err:
            raise BadRecord(f"not an image ({err})") from None
        found = [CHANNELS.get(header.mode, 0), header.height, header.width]
        if found != shape:
            raise BadRecord(f"an image of {found} ({header.mode}), index.json says {shape}")
        labels = _labels(np.array([_integer(record["cls"])]), expected)
        yield Stored(record["png"], labels[0], url)
        return
    name = "images.npy" if "images.npy" in record else "points.npy"
    if name not in record:
        found = sorted(k for k in record if not k.startswith("__"))
        raise BadRecord(f"neither png nor images.npy nor points.npy, only {found}")
    block = _array(record[name])
    count = len(block) if block.ndim else 1
    if list(block.shape[1:]) != shape:
        raise BadRecord(f"samples of {list(block.shape[1:])}, index.json says {shape}", count)
    if "labels.npy" not in record:
        raise BadRecord("no labels.npy", count)
    labels = _labels(_array(record["labels.npy"]), expected, count)
    if len(labels) != count:
        raise BadRecord(f"{len(labels)} labels for {count} samples", count)
    yield from map(Stored, block, labels, itertools.repeat(url))


def _integer(text: bytes) -> int:
    try:
        return int(text)
    except ValueError:
        raise BadRecord(f"label {text[:20]!r} is not an integer") from None


def _labels(labels: np.ndarray, expected: Expected, count: int = 1) -> list[int]:
    if labels.dtype.kind not in "iu" or labels.ndim != 1:
        raise BadRecord(f"labels of dtype {labels.dtype} and shape {labels.shape}", count)
    if len(labels) and (labels.min() < 0 or labels.max() >= max(1, expected.classes)):
        raise BadRecord(f"a label outside [0, {expected.classes}) of index.json", count)
    return labels.tolist()


def decoded(item: Stored, problems: Problems) -> np.ndarray | None:
    """A uint8 image (C, H, W), or a float32 point; None (skipped and counted) when the image
    data past the header is corrupt."""
    if not isinstance(item.data, bytes):
        return item.data
    try:
        array = np.asarray(Image.open(io.BytesIO(item.data)))
    except (OSError, ValueError) as err:
        problems.skip(1, Path(item.url).name, f"corrupt image data ({err})")
        return None
    return array[None] if array.ndim == 2 else array.transpose(2, 0, 1)


def to_unit(x: np.ndarray | torch.Tensor) -> torch.Tensor:
    """uint8 pixels -> floats in [-1, 1]; points and already-scaled images pass through."""
    x = torch.as_tensor(x)
    return x.float() / 127.5 - 1.0 if x.dtype == torch.uint8 else x


def collate(samples: list[tuple]) -> Batch:
    """(x, label, url, reader, position, skipped) samples -> one Batch, scaled once."""
    xs, ys, urls, readers, positions, skipped = zip(*samples, strict=True)
    x = to_unit(np.stack(xs))
    shards = frozenset(Path(u).name for u in set(urls))
    return Batch(x, torch.tensor(ys), shards, readers[-1], positions[-1], skipped[-1])


def _array(data: bytes) -> np.ndarray:
    try:
        return np.load(io.BytesIO(data), allow_pickle=False)
    except (OSError, ValueError) as err:
        raise BadRecord(f"unreadable array ({err})") from None
