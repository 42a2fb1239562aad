"""Write a source's splits as WebDataset tar shards plus an index.json describing them."""

from __future__ import annotations

import functools
import hashlib
import io
import json
import multiprocessing
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import webdataset as wds
from tqdm import tqdm

from pipeline.data import images
from pipeline.data.sources import Source, Split, open_source

INDEX = "index.json"
POINTS_PER_RECORD = 500  # 2D points are stored in blocks: one tar member per point is slow
DEFAULT_SHARD_SIZE = {"image": 200, "points": 10_000}  # samples per shard
PARALLEL_FROM = 2000  # images; below this, starting worker processes costs more than it saves


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


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
    index: dict[str, Any] = {
        "format": 1,
        "source": source.name,
        "kind": source.kind,
        "shape": source.shape,
        "classes": source.classes,
        **source.info,
        "splits": {},
    }
    if source.kind == "image":
        index["resize"] = images.FILTERS
    per_record = POINTS_PER_RECORD if source.kind == "points" else 1
    max_records = max(1, (shard_size or DEFAULT_SHARD_SIZE[source.kind]) // per_record)
    for split_name, split in source.splits.items():
        for stale in out.glob(f"{split_name}-*.tar"):  # a rebuild replaces this split only
            stale.unlink()
        pattern = str(out / f"{split_name}-%05d.tar")
        with wds.ShardWriter(pattern, maxcount=max_records, verbose=0) as sink:
            for record in _records(source, split, split_name, workers):
                sink.write(record)
        shards = sorted(out.glob(f"{split_name}-*.tar"))
        total = len(split.labels)
        per_shard = per_record * max_records
        counts = [min(per_shard, total - i * per_shard) for i in range(len(shards))]
        index["splits"][split_name] = {
            "samples": total,
            "shards": [
                {"name": p.name, "samples": n, "sha256": sha256(p)}
                for p, n in zip(shards, counts, strict=True)
            ],
        }
    (out / INDEX).write_text(json.dumps(index, indent=2))
    return index


def _records(source: Source, split: Split, name: str, workers: int | None) -> Iterator[dict]:
    if source.kind == "points":
        yield from _point_records(np.asarray(split.items), split.labels)
        return
    channels, resolution = source.shape[0], source.shape[-1]
    encode = functools.partial(
        images.png_bytes, resolution=resolution, mode="L" if channels == 1 else "RGB"
    )
    workers = workers if workers is not None else os.cpu_count() or 1
    progress = tqdm(
        total=len(split.items),
        desc=f"{name} images",
        unit="img",
        disable=len(split.items) < PARALLEL_FROM,
    )
    if workers > 1 and len(split.items) >= PARALLEL_FROM:
        with multiprocessing.get_context("spawn").Pool(workers) as pool:
            pngs = pool.imap(encode, split.items, chunksize=64)  # keeps the order
            yield from _image_records(pngs, split.labels, progress)
    else:
        yield from _image_records(map(encode, split.items), split.labels, progress)
    progress.close()


def _image_records(pngs: Iterator[bytes], labels: np.ndarray, progress: tqdm) -> Iterator[dict]:
    for i, (png, label) in enumerate(zip(pngs, labels, strict=True)):
        progress.update()
        yield {"__key__": f"{i:08d}", "png": png, "cls": str(int(label)).encode()}


def _point_records(points: np.ndarray, labels: np.ndarray) -> Iterator[dict]:
    for i in range(0, len(points), POINTS_PER_RECORD):
        yield {
            "__key__": f"{i // POINTS_PER_RECORD:08d}",
            "points.npy": _npy(points[i : i + POINTS_PER_RECORD]),
            "labels.npy": _npy(labels[i : i + POINTS_PER_RECORD]),
        }


def _npy(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=False)
    return buf.getvalue()
