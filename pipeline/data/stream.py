"""The training data stream: endless, shuffled, and resumable at the exact sample.

Each rank reads its own shards; its loader workers (readers) split them again. A reader goes
over its shards in passes: pass p's shard order and shuffle are seeded by (run seed, rank,
reader, p), and the shuffle buffer empties at the end of every pass. So the stream is a
function of the seed and a position (pass, samples read in it): a resumed run starts each
reader where the checkpoint left it, skipping (without decoding) the samples of the
interrupted pass it had already read, and sees exactly the batches it would have seen.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
import webdataset as wds

from pipeline.config import AugmentConfig
from pipeline.data import augment as augmentation
from pipeline.data.problems import Problems
from pipeline.data.records import Batch, Expected, Stored, collate, decoded, stored_samples, to_unit
from pipeline.errors import UserError


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
        samples = self.samples(reader, self.shards[reader::workers])
        return wds.batched(self.batch_size, collation_fn=collate, partial=False)(samples)

    def samples(self, reader: int, shards: list[tuple[str, int]]) -> Iterator[tuple]:
        problems = Problems()
        passes, skip = self.starts.get(reader, (0, 0))
        while True:
            name = f"{self.seed}/{self.rank}/{reader}/{passes}"
            for read, item in enumerate(self.one_pass(shards, random.Random(name), problems), 1):
                if read <= skip:
                    continue
                x = decoded(item, problems)
                if x is None:
                    continue
                if self.augment is not None:
                    x = augmented(x, self.augment, random.Random(f"augment/{name}/{read}"))
                yield x, item.label, item.url, reader, (passes, read), problems.skipped
            passes, skip = passes + 1, 0

    def one_pass(self, shards: list[tuple[str, int]], rng: random.Random, problems: Problems):
        order = rng.sample(shards, len(shards))
        read = (read_shard(url, count, self.expected, problems) for url, count in order)
        return shuffled(itertools.chain.from_iterable(read), self.shuffle_buffer, rng)


def read_shard(url: str, count: int, expected: Expected, problems: Problems) -> Iterator[Stored]:
    """A shard's samples. What a damaged tar loses is counted against the sample count in
    index.json; a shard that gives no sample at all is an error."""
    damage: list[Exception] = []

    def keep_what_was_read(err: Exception) -> bool:
        damage.append(err)
        return True

    records = wds.tarfile_samples([{"url": url}], handler=keep_what_was_read)
    before, good = problems.skipped, 0
    for item in stored_samples(records, expected, problems):
        good += 1
        yield item
    lost = count - good - (problems.skipped - before)
    if lost > 0:
        why = f"damaged tar ({damage[0]})" if damage else "fewer samples than index.json lists"
        problems.skip(lost, Path(url).name, f"{why}: {good} of {count} read")
    if good == 0:
        raise UserError(
            f"shard {url}: none of its {count} samples can be read ({problems.last}); "
            "rebuild the dataset, or remove the shard from index.json"
        )


def shuffled(items: Iterator[Any], size: int, rng: random.Random) -> Iterator[Any]:
    """A buffer shuffle that empties when `items` ends (one pass), so passes do not mix."""
    buffer: list[Any] = []
    for item in items:
        buffer.append(item)
        if len(buffer) >= size:
            k = rng.randrange(len(buffer))
            buffer[k], buffer[-1] = buffer[-1], buffer[k]
            yield buffer.pop()
    rng.shuffle(buffer)
    yield from buffer


def augmented(x: np.ndarray, config: AugmentConfig, rng: random.Random) -> np.ndarray:
    return augmentation.augment(to_unit(x), config, rng).numpy()


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
        if workers == 0:
            self.batches = iter(readers)
        else:  # its own generator: creating the loader must not draw from the global RNG
            self.batches = iter(
                wds.WebLoader(
                    readers,
                    batch_size=None,
                    num_workers=workers,
                    persistent_workers=True,
                    pin_memory=torch.cuda.is_available(),  # page-locked: copies run async
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


def _own_message(err: UserError) -> str:
    """A loader worker's error arrives wrapped in its traceback, whose last line it is."""
    last = str(err).strip().splitlines()[-1]
    return last.partition("UserError: ")[2] or last
