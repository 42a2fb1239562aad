"""The training data stream: endless, shuffled, and resumable at the exact sample.

Each rank reads its own shards; its loader workers (readers) split them again. A reader goes
over its shards in passes: pass p's shard order and shuffle are seeded by (run seed, rank,
reader, p); the shuffle permutes `shuffle_buffer` samples at a time as whole arrays, and never
mixes two passes. So the stream is a function of the seed and a position (pass, samples read
in it): a resumed run starts each reader where the checkpoint left it, skipping (without
decoding) the samples of the interrupted pass it had already read, and sees exactly the
batches it would have seen.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import webdataset as wds

from pipeline.config import AugmentConfig
from pipeline.data import augment as augmentation
from pipeline.data.problems import Problems
from pipeline.data.records import (
    Batch,
    Block,
    Expected,
    Rows,
    batch,
    batches,
    decoded,
    stored_blocks,
    to_unit,
)
from pipeline.errors import UserError

BURST, BURST_BYTES = 32, 16 * 2**20


class Readers(torch.utils.data.IterableDataset):
    """One rank's readers. A DataLoader takes batches from its workers in turn, so batch n
    comes from reader n % workers; a resumed loader's worker w plays reader (w + rotation)."""

    def __init__(self, shards: list[tuple[str, int]], expected: Expected, batch_size: int,
                 seed: int | str, rank: int, *, shuffle_buffer: int,
                 augment: AugmentConfig | None, starts: dict[int, tuple[int, int]],
                 rotation: int):  # fmt: skip
        super().__init__()
        self.shards, self.expected, self.batch_size = shards, expected, batch_size
        self.seed, self.rank = seed, rank
        self.shuffle_buffer, self.augment = shuffle_buffer, augment
        self.starts, self.rotation = starts, rotation

    def __iter__(self) -> Iterator[Batch]:
        info = torch.utils.data.get_worker_info()
        worker, workers = (info.id, info.num_workers) if info else (0, 1)
        reader = (worker + self.rotation) % workers
        shards = self.shards[reader::workers]
        names = [Path(url).name for url, _ in shards]
        problems = Problems()
        rows = self.rows(reader, shards, names, problems)
        for parts in batches(rows, self.batch_size, partial=False):
            yield batch(parts, names, reader, problems.skipped)

    def rows(self, reader: int, shards: list[tuple[str, int]], names: list[str],
             problems: Problems):  # fmt: skip
        """The reader's samples, pass after pass, decoded (and augmented) a batch's worth at a
        time; a resumed reader skips what it had read of its interrupted pass undecoded."""
        passes, skip = self.starts.get(reader, (0, 0))
        while True:
            name = f"{self.seed}/{self.rank}/{reader}/{passes}"
            read = 0
            for samples in self.one_pass(shards, random.Random(name), problems):
                places = np.arange(read + 1, read + len(samples) + 1)  # in the pass, 1-based
                read += len(samples)
                unread = places > skip
                samples, places = samples.take(unread), places[unread]
                for k in range(0, len(places), self.batch_size):
                    part = slice(k, k + self.batch_size)
                    yield self.decoded(samples.take(part), places[part], passes, name, names,
                                       problems)  # fmt: skip
            passes, skip = passes + 1, 0

    def one_pass(self, shards: list[tuple[str, int]], rng: random.Random, problems: Problems):
        """A pass's samples in shuffled windows: the shards in a seeded order, their samples
        `shuffle_buffer` at a time in a seeded permutation."""
        order = rng.sample(range(len(shards)), len(shards))
        permutations = np.random.default_rng(rng.getrandbits(64))
        blocks = (
            Samples(block.data, block.labels, np.full(len(block.labels), k))
            for k in order
            for block in read_shard(*shards[k], self.expected, problems)
        )
        return windows(blocks, self.shuffle_buffer, permutations)

    def decoded(self, samples: Samples, places: np.ndarray, passes: int, name: str,
                names: list[str], problems: Problems) -> Rows:  # fmt: skip
        data, kept = decoded(samples.data, problems, lambda k: names[samples.shard[k]])
        x, places = to_unit(data), places[kept]
        if self.augment is not None and len(places):  # seeded by each sample's place
            x = torch.stack([
                augmentation.augment(image, self.augment, random.Random(f"augment/{name}/{n}"))
                for image, n in zip(x, places.tolist(), strict=True)
            ])  # fmt: skip
        return Rows(x, samples.labels[kept], samples.shard[kept], places, passes)


@dataclass
class Samples:
    """Samples as stored, each with the index of its shard in the reader's list."""

    data: np.ndarray
    labels: np.ndarray
    shard: np.ndarray

    def __len__(self) -> int:
        return len(self.labels)

    def take(self, which: slice | np.ndarray) -> Samples:
        return Samples(self.data[which], self.labels[which], self.shard[which])


def windows(blocks: Iterator[Samples], size: int, rng: np.random.Generator) -> Iterator[Samples]:
    """Blocks gathered `size` samples at a time (fewer at the pass's end) and permuted; as they
    come with `size` 0."""
    if size == 0:
        yield from blocks
        return
    gathered: list[Samples] = []
    count = 0
    for block in blocks:
        gathered.append(block)
        count += len(block)
        if count >= size:
            yield permuted(gathered, rng)
            gathered, count = [], 0
    if gathered:
        yield permuted(gathered, rng)


def permuted(blocks: list[Samples], rng: np.random.Generator) -> Samples:
    whole = Samples(
        np.concatenate([b.data for b in blocks]),
        np.concatenate([b.labels for b in blocks]),
        np.concatenate([b.shard for b in blocks]),
    )
    return whole.take(rng.permutation(len(whole)))


def read_shard(url: str, count: int, expected: Expected, problems: Problems) -> Iterator[Block]:
    """A shard's records. What a damaged tar loses is counted against the sample count in
    index.json; a shard that gives no sample at all is an error."""
    damage: list[Exception] = []

    def keep_what_was_read(err: Exception) -> bool:
        damage.append(err)
        return True

    records = wds.tarfile_samples([{"url": url}], handler=keep_what_was_read)
    before, good = problems.skipped, 0
    for block in stored_blocks(records, expected, problems):
        good += len(block.labels)
        yield block
    lost = count - good - (problems.skipped - before)
    if lost > 0:
        why = f"damaged tar ({damage[0]})" if damage else "fewer samples than index.json lists"
        problems.skip(lost, Path(url).name, f"{why}: {good} of {count} read")
    if good == 0:
        raise UserError(
            f"shard {url}: none of its {count} samples can be read ({problems.last}); "
            "rebuild the dataset, or remove the shard from index.json"
        )


class TrainingStream:
    """Batches from this rank's readers, counting what the loop took: `state_dict()` is the
    position a resumed run continues from (batches taken, each reader's position)."""

    def __init__(self, shards: list[tuple[str, int]], expected: Expected, batch_size: int, *,
                 seed: int | str, rank: int, workers: int, shuffle_buffer: int,
                 augment: AugmentConfig | None, state: dict[str, Any] | None = None):  # fmt: skip
        state = state or {"taken": 0, "readers": {}}
        self.taken = state["taken"]
        self.positions = {int(k): tuple(v) for k, v in state["readers"].items()}
        self.skipped: dict[int, int] = {}  # bad samples each reader met in this job
        readers = Readers(
            shards, expected, batch_size, seed, rank,
            shuffle_buffer=shuffle_buffer, augment=augment,
            starts=dict(self.positions), rotation=self.taken % max(1, workers),
        )  # fmt: skip
        # Page-locked for a GPU: a copy from pageable memory first waits for the GPU's queue.
        pin = torch.cuda.is_available()
        if workers == 0:
            self.batches = in_bursts(iter(readers), pin)
        else:  # its own generator: creating the loader must not draw from the global RNG
            self.batches = iter(
                wds.WebLoader(
                    readers,
                    batch_size=None,
                    num_workers=workers,
                    persistent_workers=True,
                    pin_memory=pin,
                    generator=torch.Generator(),
                )
            )

    def __iter__(self) -> TrainingStream:
        return self

    def __next__(self) -> Batch:
        try:
            batch = next(self.batches)
        except UserError as err:
            raise UserError(_own_message(err)) from None
        self.taken += 1
        self.positions[batch.reader] = tuple(batch.position)
        self.skipped[batch.reader] = batch.skipped
        return batch

    def state_dict(self) -> dict[str, Any]:
        readers = {k: list(v) for k, v in self.positions.items()}
        return {"taken": self.taken, "readers": readers}


def in_bursts(batches: Iterator[Batch], pin: bool) -> Iterator[Batch]:
    """Batches read up to BURST of them (and BURST_BYTES) at a time, for a loader without
    workers: reading one between two training steps costs more than its own time, as the
    step's kernels then start cold (on the ring's MLP, 9-13% over the plain loop one at a
    time, 4-8% in bursts of 32). `pin`: into page-locked memory, as loader workers do."""
    burst = list(itertools.islice(batches, 1))  # the first batch gives the burst's size
    size = max(1, min(BURST, BURST_BYTES // max(1, burst[0].x.nbytes))) if burst else 1
    while burst:
        yield from [pinned(b) for b in burst] if pin else burst  # pinned while reading
        burst = list(itertools.islice(batches, size))


def pinned(batch: Batch) -> Batch:
    return batch._replace(x=batch.x.pin_memory(), y=batch.y.pin_memory())


def _own_message(err: UserError) -> str:
    """A loader worker's error arrives wrapped in its traceback, whose last line it is."""
    last = str(err).strip().splitlines()[-1]
    return last.partition("UserError: ")[2] or last
