"""Stored records -> samples -> batches.

A record holds one PNG image, or a block of raw uint8 images or of 2D points (see
`shards.layout`). Samples travel as arrays, a record's block at a time: per-sample Python
would cost more than a small model's training step. They stay as stored (PNG bytes, array
rows) until `decoded`, so a stream that skips samples to reach a resume position does not pay
for decoding them. Bad records and samples are skipped and counted
(pipeline/data/problems.py).
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
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


class Block(NamedTuple):
    """One record's samples as stored."""

    data: np.ndarray  # uint8 images (n, C, H, W) or points (n, 2); or one PNG: (1,) of bytes
    labels: np.ndarray  # (n,) int64
    url: str


class Rows(NamedTuple):
    """Consecutive samples of a stream, decoded."""

    x: torch.Tensor  # images (n, C, H, W) in [-1, 1], or points (n, 2)
    y: np.ndarray  # (n,) labels
    shard: np.ndarray  # (n,) each sample's shard, as an index into the reader's shard names
    read: np.ndarray  # (n,) each sample's place in its pass (1-based)
    passes: int  # which pass of its reader they come from

    def split(self, k: int) -> tuple[Rows, Rows]:
        first = Rows(self.x[:k], self.y[:k], self.shard[:k], self.read[:k], self.passes)
        return first, Rows(self.x[k:], self.y[k:], self.shard[k:], self.read[k:], self.passes)


class Batch(NamedTuple):
    x: torch.Tensor  # images (N, C, H, W) in [-1, 1], or points (N, 2)
    y: torch.Tensor  # class or mixture-component labels (N,)
    shards: frozenset[str]  # names of the shards the batch came from
    reader: int = 0  # which of the rank's readers (loader workers) made it
    position: tuple[int, int] = (0, 0)  # that reader's (pass, sample) after its last sample
    skipped: int = 0  # bad samples that reader has met so far


def stored_blocks(
    records: Iterator[dict[str, Any]], expected: Expected, problems: Problems
) -> Iterator[Block]:
    """The samples of each record; a record that is unreadable, unlabelled or not what the
    index promises is skipped and counted."""
    for record in records:
        try:
            yield _checked(record, expected)
        except BadRecord as bad:
            where = f"{Path(record['__url__']).name} (record {record.get('__key__')})"
            problems.skip(bad.count, where, bad.why)


def _checked(record: dict[str, Any], expected: Expected) -> Block:
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
        png = np.empty(1, dtype=object)
        png[0] = record["png"]
        return Block(png, _labels(np.array([_integer(record["cls"])]), expected), url)
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
    return Block(block, labels, url)


def _integer(text: bytes) -> int:
    try:
        return int(text)
    except ValueError:
        raise BadRecord(f"label {text[:20]!r} is not an integer") from None


def _labels(labels: np.ndarray, expected: Expected, count: int = 1) -> np.ndarray:
    if labels.dtype.kind not in "iu" or labels.ndim != 1:
        raise BadRecord(f"labels of dtype {labels.dtype} and shape {labels.shape}", count)
    if len(labels) and (labels.min() < 0 or labels.max() >= max(1, expected.classes)):
        raise BadRecord(f"a label outside [0, {expected.classes}) of index.json", count)
    return labels.astype(np.int64)


def decoded(
    data: np.ndarray, problems: Problems, where: Callable[[int], str]
) -> tuple[np.ndarray, np.ndarray]:
    """Stored samples -> uint8 images (n, C, H, W) or float32 points, and which of them were
    kept: a PNG whose data past the header is corrupt is skipped and counted (`where(k)`
    names sample k's shard)."""
    if data.dtype != object:
        return data, np.ones(len(data), dtype=bool)
    images, kept = [], np.zeros(len(data), dtype=bool)
    for k, png in enumerate(data):
        try:
            array = np.asarray(Image.open(io.BytesIO(png)))
        except (OSError, ValueError) as err:
            problems.skip(1, where(k), f"corrupt image data ({err})")
            continue
        images.append(array[None] if array.ndim == 2 else array.transpose(2, 0, 1))
        kept[k] = True
    return (np.stack(images) if images else np.empty((0,), np.uint8)), kept


def to_unit(x: np.ndarray | torch.Tensor) -> torch.Tensor:
    """uint8 pixels -> floats in [-1, 1]; points and already-scaled images pass through."""
    x = torch.as_tensor(x)
    return x.float() / 127.5 - 1.0 if x.dtype == torch.uint8 else x


def batches(rows: Iterator[Rows], size: int, partial: bool) -> Iterator[list[Rows]]:
    """Rows of any lengths -> runs of exactly `size` samples (and, if `partial`, a shorter
    last one)."""
    taken, n = [], 0
    for more in rows:
        while len(more.y):
            part, more = more.split(size - n)
            taken.append(part)
            n += len(part.y)
            if n == size:
                yield taken
                taken, n = [], 0
    if partial and taken:
        yield taken


def batch(parts: list[Rows], names: list[str], reader: int = 0, skipped: int = 0) -> Batch:
    """Rows -> one Batch; `names`: the shards that `Rows.shard` indexes."""
    shards = frozenset(names[k] for k in np.unique(np.concatenate([p.shard for p in parts])))
    last = parts[-1]
    position = (last.passes, int(last.read[-1]))
    y = torch.from_numpy(np.concatenate([p.y for p in parts]))
    return Batch(torch.cat([p.x for p in parts]), y, shards, reader, position, skipped)


def _array(data: bytes) -> np.ndarray:
    try:
        return np.load(io.BytesIO(data), allow_pickle=False)
    except (OSError, ValueError) as err:
        raise BadRecord(f"unreadable array ({err})") from None
