"""Write a source's splits as WebDataset tar shards plus an index.json describing them."""

from __future__ import annotations

import contextlib
import functools
import io
import itertools
import json
import multiprocessing
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import webdataset as wds
from tqdm import tqdm

from pipeline.data import images
from pipeline.data.sources import Source, Split, open_source
from pipeline.files import sha256

INDEX = "index.json"
FORMAT = 2  # 1: images as one PNG per tar member; 2 adds blocks of raw pixels
# Reading a tar member costs about a millisecond in Python, so small samples go in blocks:
# 2D points, and images up to RAW_UP_TO pixels (raw uint8; above it PNG's compression pays).
RAW_UP_TO = 64
PER_RECORD = {"points": 500, "raw": 100, "png": 1}
DEFAULT_SHARD_SIZE = {"image": 200, "points": 10_000}  # samples per shard
PARALLEL_FROM = 2000  # images; below this, starting worker processes costs more than it saves


def build(
    name: str, out: Path, shard_size: int | None = None, workers: int | None = None, **options: Any
) -> dict[str, Any]:
    """Open source `name` (options: see `open_source`) and write it to `out`."""
    return write(open_source(name, **options), out, shard_size, workers)


def write(
    source: Source, out: Path, shard_size: int | None = None, workers: int | None = None
) -> dict[str, Any]:
    """Write `out/<split>-NNNNN.tar` and `out/index.json`; returns the index."""
    out.mkdir(parents=True, exist_ok=True)
    how = layout(source)
    index: dict[str, Any] = {
        "format": FORMAT,
        "source": source.name,
        "kind": source.kind,
        "shape": source.shape,
        "classes": source.classes,
        "layout": how,
        **source.info,
        "splits": {},
    }
    if source.kind == "image":
        index["resize"] = images.FILTERS
    size = shard_size or DEFAULT_SHARD_SIZE[source.kind]
    for split_name, split in source.splits.items():
        for stale in out.glob(f"{split_name}-*.tar"):  # a rebuild replaces this split only
            stale.unlink()
        samples = _encoded(source, split, split_name, workers)
        shards = []
        for number, first in enumerate(range(0, len(split.labels), size)):
            path = out / f"{split_name}-{number:05d}.tar"
            labels = split.labels[first : first + size]
            # A fixed mtime makes the shards reproducible and spares every member a PAX header.
            with wds.TarWriter(str(path), mtime=0) as sink:
                for record in _records(how, itertools.islice(samples, len(labels)), labels, first):
                    sink.write(record)
            shards.append({"name": path.name, "samples": len(labels), "sha256": sha256(path)})
        index["splits"][split_name] = {"samples": len(split.labels), "shards": shards}
    (out / INDEX).write_text(json.dumps(index, indent=2))
    return index


def layout(source: Source) -> str:
    """How samples are stored: "points", "raw" (uint8 pixel blocks) or "png" (one per member)."""
    if source.kind == "points":
        return "points"
    return "raw" if source.shape[-1] <= RAW_UP_TO else "png"


def _encoded(source: Source, split: Split, name: str, workers: int | None) -> Iterator[Any]:
    """The split's samples as stored: point rows, uint8 pixel arrays or PNG bytes, in order."""
    how = layout(source)
    if how == "points":
        yield from np.asarray(split.items)
        return
    channels, resolution = source.shape[0], source.shape[-1]
    encode = functools.partial(
        images.pixels if how == "raw" else images.png_bytes,
        resolution=resolution,
        mode="L" if channels == 1 else "RGB",
    )
    workers = workers if workers is not None else os.cpu_count() or 1
    with contextlib.ExitStack() as stack:
        if workers > 1 and len(split.items) >= PARALLEL_FROM:
            pool = stack.enter_context(multiprocessing.get_context("spawn").Pool(workers))
            encoded = pool.imap(encode, split.items, chunksize=64)  # keeps the order
        else:
            encoded = map(encode, split.items)
        yield from tqdm(
            encoded,
            total=len(split.items),
            desc=f"{name} images",
            unit="img",
            disable=len(split.items) < PARALLEL_FROM,
            mininterval=1 if sys.stderr.isatty() else 30,  # logs get a line every 30 s
        )


def _records(how: str, samples: Iterator[Any], labels: np.ndarray, first: int) -> Iterator[dict]:
    """One shard's tar records; keys number the shard's first sample in the whole split."""
    if how == "png":
        for i, (png, label) in enumerate(zip(samples, labels, strict=True)):
            yield {"__key__": f"{first + i:08d}", "png": png, "cls": str(int(label)).encode()}
        return
    size = PER_RECORD[how]
    for start in range(0, len(labels), size):
        block = np.stack(list(itertools.islice(samples, size)))
        yield {
            "__key__": f"{first + start:08d}",
            ("points.npy" if how == "points" else "images.npy"): _npy(block),
            "labels.npy": _npy(labels[start : start + size]),
        }


def _npy(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=False)
    return buf.getvalue()
