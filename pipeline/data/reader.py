"""Read shards written by `ganpipe data build`: the index, checked against the config; the
training stream (pipeline/data/stream.py), each rank reading its own disjoint subset of the
shards; one finite, ordered pass for evaluation.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
import webdataset as wds

from pipeline.config import AugmentConfig, DataConfig
from pipeline.data import augment as augmentation
from pipeline.data.description import Dataset, read_dataset
from pipeline.data.problems import Problems
from pipeline.data.records import (
    Batch,
    Expected,
    Rows,
    batch,
    batches,
    decoded,
    stored_blocks,
    to_unit,
)
from pipeline.data.shards import INDEX
from pipeline.data.stream import TrainingStream
from pipeline.errors import UserError

__all__ = ["Batch", "dataset_for", "evaluation_batches", "load_split", "training_batches"]


def dataset_for(data: DataConfig, require_data: bool = True) -> Dataset:
    """The dataset's description, checked against what the config expects (`data.shape`,
    `data.classes`). Without the data (and `require_data` False) the expectation stands in."""
    if not require_data and not (Path(data.dir) / INDEX).is_file():
        if not data.shape or data.classes < 0:
            raise UserError(
                f"no dataset at {data.dir}: set data.shape and data.classes in the "
                "config to size the models without it"
            )
        return Dataset.shaped(data.shape, data.classes, Path(data.dir))
    dataset = read_dataset(data.dir)
    for key in ("shape", "classes"):
        expected, found = getattr(data, key), getattr(dataset, key)
        if expected not in ([], -1) and expected != found:
            raise UserError(
                f"data.{key}: the config expects {expected} but {data.dir}/{INDEX} "
                f"has {found}; fix the config or rebuild the data"
            )
    return dataset


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
    state: dict[str, Any] | None = None,
) -> TrainingStream:
    """An endless stream of shuffled (and, for images, optionally augmented) batches from this
    rank's share of the shards; `state` (a stream's `state_dict()`) resumes one exactly."""
    dataset = read_dataset(data_dir)
    urls = dataset.shard_paths(split)
    readers = world * max(1, workers)
    if not urls:
        raise UserError(f"{data_dir}/{INDEX} lists no {split} shards: rebuild the dataset")
    if len(urls) < readers:
        raise UserError(
            f"{data_dir} has {len(urls)} {split} shards, fewer than processes x loader workers "
            f"= {readers}: rebuild with a smaller --shard-size or lower data.workers"
        )
    counts = [shard.samples for shard in dataset.shards(split)]
    augmenting = augment is not None and augmentation.active(augment) and dataset.images
    return TrainingStream(
        list(zip(urls, counts, strict=True))[rank::world],
        Expected(dataset.shape, dataset.classes),
        batch_size,
        seed=seed,
        rank=rank,
        workers=workers,
        shuffle_buffer=shuffle_buffer,
        augment=augment if augmenting else None,
        state=state,
    )


def evaluation_batches(
    data_dir: str | Path, batch_size: int, split: str = "test", shards: slice = slice(None)
) -> Iterator[Batch]:
    """One ordered pass over a split (or the `shards` of it), on one process."""
    dataset = read_dataset(data_dir)
    urls = dataset.shard_paths(split)[shards]
    names = [Path(url).name for url in urls]
    expected, problems = Expected(dataset.shape, dataset.classes), Problems()

    def rows() -> Iterator[Rows]:
        for k, url in enumerate(urls):
            records = wds.tarfile_samples([{"url": url}])
            for block in stored_blocks(records, expected, problems):
                data, kept = decoded(block.data, problems, lambda _, k=k: names[k])
                n = int(kept.sum())
                yield Rows(to_unit(data), block.labels[kept], np.full(n, k), np.zeros(n, int), 0)

    return (batch(parts, names) for parts in batches(rows(), batch_size, partial=True))


def load_split(data_dir: str | Path, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    """A whole split in memory (evaluation references are small)."""
    batches = list(evaluation_batches(data_dir, 1000, split))
    return torch.cat([b.x for b in batches]), torch.cat([b.y for b in batches])


def spread_sample(data_dir: str | Path, n: int, split: str = "train") -> tuple[torch.Tensor, ...]:
    """About `n` samples and their labels, taken from the start of every shard alike: a
    fixed set that reaches every class even when the shards are sorted by class."""
    shards = len(read_dataset(data_dir).shards(split))
    per_shard = -(-n // shards)
    xs, ys = [], []
    for k in range(shards):
        batch = next(evaluation_batches(data_dir, per_shard, split, slice(k, k + 1)), None)
        if batch is not None:
            xs.append(batch.x)
            ys.append(batch.y)
    return torch.cat(xs)[:n], torch.cat(ys)[:n]
