"""Read shards written by `ganpipe data build` as batches of tensors.

Training reads an infinite, shuffled stream; each rank (and each loader worker) reads its own
disjoint subset of the shards, reshuffled every pass with a seed that depends on the run seed,
the rank and the step it starts from. Evaluation reads one finite, ordered pass.
"""

from __future__ import annotations

import io
import itertools
import json
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
import webdataset as wds
from PIL import Image

from pipeline.config import AugmentConfig, DataConfig
from pipeline.data import augment as augmentation
from pipeline.data.shards import INDEX
from pipeline.errors import UserError


class Batch(NamedTuple):
    x: torch.Tensor  # images (N, C, H, W) in [-1, 1], or points (N, 2)
    y: torch.Tensor  # class or mixture-component labels (N,)
    shards: frozenset[str]  # names of the shards the batch came from


def read_index(data_dir: str | Path) -> dict[str, Any]:
    path = Path(data_dir) / INDEX
    if not path.is_file():
        raise UserError(
            f"no dataset at {data_dir} ({INDEX} missing): build one with "
            f"`ganpipe data build digits --out {data_dir}` or set data.dir"
        )
    return json.loads(path.read_text())


def dataset_index(data: DataConfig, require_data: bool = True) -> dict[str, Any]:
    """The dataset's index, checked against what the config expects (`data.shape`,
    `data.classes`). Without the data (and `require_data` False) the expectation stands in."""
    if not require_data and not (Path(data.dir) / INDEX).is_file():
        if not data.shape or data.classes < 0:
            raise UserError(
                f"no dataset at {data.dir}: set data.shape and data.classes in the "
                "config to size the models without it"
            )
        return {
            "source": "config",
            "kind": "image" if len(data.shape) == 3 else "points",
            "shape": data.shape,
            "classes": data.classes,
        }
    index = read_index(data.dir)
    for key in ("shape", "classes"):
        expected = getattr(data, key)
        if expected not in ([], -1) and expected != index[key]:
            raise UserError(
                f"data.{key}: the config expects {expected} but {data.dir}/{INDEX} "
                f"has {index[key]}; fix the config or rebuild the data"
            )
    return index


def shard_paths(data_dir: str | Path, index: dict[str, Any], split: str) -> list[str]:
    if split not in index["splits"]:
        raise UserError(f"{data_dir}/{INDEX} has no split {split!r}: rebuild the dataset")
    paths = [Path(data_dir) / s["name"] for s in index["splits"][split]["shards"]]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise UserError(f"shard {missing[0]} listed in {INDEX} is missing: rebuild the dataset")
    return [str(p) for p in paths]


class _RankShards(torch.utils.data.IterableDataset):
    """This rank's and this worker's shards, in a fresh seeded order on every pass."""

    def __init__(self, urls: list[str], rank: int, world: int, seed: int | str, infinite: bool):
        super().__init__()
        self.urls, self.rank, self.world = urls, rank, world
        self.seed, self.infinite = seed, infinite

    def __iter__(self) -> Iterator[dict[str, str]]:
        info = torch.utils.data.get_worker_info()
        worker, workers = (info.id, info.num_workers) if info else (0, 1)
        mine = self.urls[self.rank :: self.world][worker::workers]
        rng = random.Random(f"{self.seed}/{self.rank}/{worker}")
        while True:
            order = rng.sample(mine, len(mine)) if self.infinite else mine
            for url in order:
                yield {"url": url}
            if not self.infinite:
                return


def _samples(records: Iterator[dict[str, Any]]) -> Iterator[tuple]:
    """A pipeline stage: stored records -> (x, label, url) samples. A record holds one PNG
    image, or a block of raw uint8 images or of 2D points (see `shards.layout`)."""
    for record in records:
        url = record["__url__"]
        if "png" in record:
            array = np.asarray(Image.open(io.BytesIO(record["png"])), dtype=np.float32)
            x = torch.from_numpy(array / 127.5 - 1.0)
            yield (x.unsqueeze(0) if x.ndim == 2 else x.permute(2, 0, 1)), int(record["cls"]), url
            continue
        labels = _array(record["labels.npy"]).tolist()
        if "images.npy" in record:
            xs = torch.from_numpy(_array(record["images.npy"])).float() / 127.5 - 1.0
        else:
            xs = torch.from_numpy(_array(record["points.npy"]))
        yield from zip(xs.unbind(0), labels, itertools.repeat(url))


def _array(data: bytes) -> np.ndarray:
    return np.load(io.BytesIO(data), allow_pickle=False)


def _collate(samples: list[tuple]) -> Batch:
    xs, ys, urls = zip(*samples, strict=True)
    return Batch(torch.stack(xs), torch.tensor(ys), frozenset(Path(u).name for u in set(urls)))


def _loader(pipeline: wds.DataPipeline, workers: int) -> Any:
    if workers == 0:
        return pipeline
    return wds.WebLoader(pipeline, batch_size=None, num_workers=workers, persistent_workers=True)


def training_batches(
    data_dir: str | Path,
    batch_size: int,
    *,
    seed: int | str,
    rank: int = 0,
    world: int = 1,
    shuffle_buffer: int = 1000,
    workers: int = 0,
    split: str = "train",
    augment: AugmentConfig | None = None,
) -> Iterator[Batch]:
    """An endless stream of shuffled (and, for images, optionally augmented) batches from this
    rank's share of the shards."""
    index = read_index(data_dir)
    urls = shard_paths(data_dir, index, split)
    readers = world * max(1, workers)
    if len(urls) < readers:
        raise UserError(
            f"{data_dir} has {len(urls)} {split} shards, fewer than processes x loader workers "
            f"= {readers}: rebuild with a smaller --shard-size or lower data.workers"
        )
    stages = [
        _RankShards(urls, rank, world, seed, infinite=True),
        wds.tarfile_to_samples(),
        _samples,
        wds.shuffle(shuffle_buffer, initial=shuffle_buffer, rng=random.Random(f"{seed}/{rank}")),
    ]
    if augment is not None and augmentation.active(augment) and index["kind"] == "image":
        stages.append(augmentation.stage(augment, f"{seed}/{rank}"))
    stages.append(wds.batched(batch_size, collation_fn=_collate, partial=False))
    pipeline = wds.DataPipeline(*stages)
    return iter(_loader(pipeline, workers))


def evaluation_batches(
    data_dir: str | Path, batch_size: int, split: str = "test"
) -> Iterator[Batch]:
    """One ordered pass over a split, on one process."""
    index = read_index(data_dir)
    pipeline = wds.DataPipeline(
        _RankShards(shard_paths(data_dir, index, split), 0, 1, seed=0, infinite=False),
        wds.tarfile_to_samples(),
        _samples,
        wds.batched(batch_size, collation_fn=_collate, partial=True),
    )
    return iter(pipeline)


def load_split(data_dir: str | Path, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    """A whole split in memory (evaluation references are small)."""
    batches = list(evaluation_batches(data_dir, 1000, split))
    return torch.cat([b.x for b in batches]), torch.cat([b.y for b in batches])
