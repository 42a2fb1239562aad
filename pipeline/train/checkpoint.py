"""Full-state checkpoints: one directory per step, written atomically, the last K kept.

`step-NNNNNNNN/state.pt` holds the models, EMA, optimizers and counters (written by the main
process); `rank<r>.pt` holds each rank's random generators and data-stream position.
Everything is plain tensors and containers, so it loads with `torch.load(weights_only=True)`:
a checkpoint cannot run code.
"""

from __future__ import annotations

import os
import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pipeline.errors import UserError

PREFIX = "step-"
STATE = "state.pt"


def rank_file(rank: int) -> str:
    return f"rank{rank}.pt"


def directory(run_dir: Path) -> Path:
    return run_dir / "checkpoints"


def latest(run_dir: Path) -> Path | None:
    found = sorted(directory(run_dir).glob(f"{PREFIX}*"))
    return found[-1] if found else None


def staging(run_dir: Path, step: int) -> Path:
    """Where every rank writes its part before the main process publishes the checkpoint."""
    path = directory(run_dir) / f".tmp-{PREFIX}{step:08d}"
    path.mkdir(parents=True, exist_ok=True)
    return path


def write(path: Path, payload: dict[str, Any]) -> None:
    with open(path, "wb") as f:
        torch.save(payload, f)
        f.flush()
        os.fsync(f.fileno())


def publish(run_dir: Path, step: int, keep: int) -> Path:
    """Rename the staged directory into place (atomic), then drop all but the newest `keep`."""
    final = directory(run_dir) / f"{PREFIX}{step:08d}"
    if final.exists():
        shutil.rmtree(final)
    os.replace(staging(run_dir, step), final)
    for old in sorted(directory(run_dir).glob(f"{PREFIX}*"))[:-keep]:
        shutil.rmtree(old)
    return final


def load(path: Path) -> dict[str, Any]:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise UserError(f"checkpoint file {path} is missing") from None
    except Exception as err:  # torch raises several types for corrupt or unsafe files
        raise UserError(f"cannot load checkpoint {path}: {err}") from None


def rng_state() -> dict[str, Any]:
    version, keys, gauss = random.getstate()
    kind, np_keys, pos, has_gauss, cached = np.random.get_state()
    return {
        "python": [version, list(keys), gauss],
        "numpy": [kind, torch.from_numpy(np_keys.astype(np.int64)), pos, has_gauss, cached],
        "torch": torch.get_rng_state(),
    }


def set_rng_state(state: dict[str, Any]) -> None:
    version, keys, gauss = state["python"]
    random.setstate((version, tuple(keys), gauss))
    kind, np_keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, np_keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
