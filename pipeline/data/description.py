"""What a dataset directory holds, read once from its index.json: the one description that
training, the models and evaluation ask, instead of each reading keys of the raw mapping."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.data.shards import INDEX
from pipeline.errors import UserError

DIGIT_SOURCES = ("digits", "stacked-digits")  # read by the project's digit classifier


@dataclass(frozen=True)
class Shard:
    name: str
    samples: int


@dataclass(frozen=True)
class Mixture:
    """The Gaussian mixture a 2D-points dataset was drawn from."""

    means: list[list[float]]
    std: float


@dataclass(frozen=True)
class Dataset:
    dir: Path
    source: str  # digits, stacked-digits, mog-ring, cifar10, folder, npz, ... ; "config": none
    kind: str  # "image" or "points"
    shape: list[int]
    classes: int  # 0: unlabelled
    splits: dict[str, list[Shard]] = field(default_factory=dict)
    mixture: Mixture | None = None

    @classmethod
    def shaped(cls, shape: list[int], classes: int, where: Path = Path()) -> Dataset:
        """A description by shape alone, for sizing models without the data."""
        return cls(where, "config", "image" if len(shape) == 3 else "points", list(shape), classes)

    @property
    def images(self) -> bool:
        return self.kind == "image"

    @property
    def resolution(self) -> int:
        return self.shape[-1]

    def samples(self, split: str) -> int:
        return sum(shard.samples for shard in self.splits.get(split, []))

    def shards(self, split: str) -> list[Shard]:
        if split not in self.splits:
            raise UserError(f"{self.dir}/{INDEX} has no split {split!r}: rebuild the dataset")
        return self.splits[split]

    def shard_paths(self, split: str) -> list[str]:
        """The split's shard files, every one of them present."""
        paths = [self.dir / shard.name for shard in self.shards(split)]
        missing = [str(p) for p in paths if not p.is_file()]
        if missing:
            raise UserError(f"shard {missing[0]} listed in {INDEX} is missing: rebuild the dataset")
        return [str(p) for p in paths]

    def summary(self) -> dict[str, Any]:
        """What a run's records say of its data."""
        return {"source": self.source, "kind": self.kind, "shape": self.shape,
                "classes": self.classes}  # fmt: skip


def read_dataset(data_dir: str | Path) -> Dataset:
    path = Path(data_dir) / INDEX
    if not path.is_file():
        raise UserError(
            f"no dataset at {data_dir} ({INDEX} missing): build one with "
            f"`ganpipe data build digits --out {data_dir}` or set data.dir"
        )
    index = json.loads(path.read_text())
    try:
        mixture = index.get("mixture")
        return Dataset(
            dir=Path(data_dir),
            source=index["source"],
            kind=index["kind"],
            shape=list(index["shape"]),
            classes=int(index["classes"]),
            splits={
                name: [Shard(s["name"], int(s["samples"])) for s in split["shards"]]
                for name, split in index["splits"].items()
            },
            mixture=Mixture(mixture["means"], float(mixture["std"])) if mixture else None,
        )
    except (KeyError, TypeError) as error:
        raise UserError(f"{path} is not a dataset index ({error!r}): rebuild the dataset") from None
