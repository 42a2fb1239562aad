"""Write a source's splits as WebDataset tar shards plus an index.json describing them."""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import webdataset as wds
from PIL import Image

from pipeline.data import sources

INDEX = "index.json"
POINTS_PER_RECORD = 500  # 2D points are stored in blocks: one tar member per point is slow
DEFAULT_SHARD_SIZE = {"image": 200, "points": 10_000}  # samples per shard


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def build(
    source: str,
    out: Path,
    resolution: int = 32,
    shard_size: int | None = None,
    n_train: int = 100_000,
    n_test: int = 2500,
    seed: int = 0,
) -> dict[str, Any]:
    """Write `out/{train,test}-NNNNN.tar` and `out/index.json`; returns the index."""
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("*.tar"):
        old.unlink()
    index: dict[str, Any] = {"format": 1, "source": source, "splits": {}}
    if source == "digits":
        splits = sources.digits(resolution)
        index.update(kind="image", shape=[1, resolution, resolution], classes=10)
        index["resize_filter"] = sources.RESIZE_FILTER.name.lower()
        records, per_record = _image_records, 1
    else:
        splits = sources.mixture_splits(source, n_train, n_test, seed)
        mix = sources.mixture(source)
        index.update(kind="points", shape=[2], classes=len(mix.means), seed=seed)
        index["mixture"] = {"means": mix.means.tolist(), "std": mix.std}
        records, per_record = _point_records, POINTS_PER_RECORD
    shard_size = shard_size or DEFAULT_SHARD_SIZE[index["kind"]]
    for split, (samples, labels) in splits.items():
        pattern = str(out / f"{split}-%05d.tar")
        max_records = max(1, shard_size // per_record)
        with wds.ShardWriter(pattern, maxcount=max_records, verbose=0) as sink:
            for record in records(samples, labels):
                sink.write(record)
        shards = sorted(out.glob(f"{split}-*.tar"))
        counts = _split_counts(len(samples), per_record, max_records, len(shards))
        index["splits"][split] = {
            "samples": len(samples),
            "shards": [
                {"name": p.name, "samples": n, "sha256": sha256(p)}
                for p, n in zip(shards, counts, strict=True)
            ],
        }
    (out / INDEX).write_text(json.dumps(index, indent=2))
    return index


def _split_counts(total: int, per_record: int, max_records: int, n_shards: int) -> list[int]:
    per_shard = per_record * max_records
    return [min(per_shard, total - i * per_shard) for i in range(n_shards)]


def _image_records(images: np.ndarray, labels: np.ndarray):
    for i, (image, label) in enumerate(zip(images, labels, strict=True)):
        png = io.BytesIO()
        Image.fromarray(image).save(png, format="PNG")
        yield {"__key__": f"{i:07d}", "png": png.getvalue(), "cls": str(int(label)).encode()}


def _point_records(points: np.ndarray, labels: np.ndarray):
    for i in range(0, len(points), POINTS_PER_RECORD):
        yield {
            "__key__": f"{i // POINTS_PER_RECORD:07d}",
            "points.npy": _npy(points[i : i + POINTS_PER_RECORD]),
            "labels.npy": _npy(labels[i : i + POINTS_PER_RECORD]),
        }


def _npy(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=False)
    return buf.getvalue()
