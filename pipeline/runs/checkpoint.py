"""Full-state checkpoints: one directory per step, written atomically, the last K kept (plus
the best by the headline metric).

`step-NNNNNNNN/state.pt` holds the models, EMA, optimizers and counters (written by the main
process); `rank<r>.pt` holds each rank's random generators, data-stream position and buffers;
`manifest.json` every file's size and checksum, so a damaged checkpoint is noticed and the one
before it used. Everything is plain tensors and containers, so it loads with
`torch.load(weights_only=True)`: a checkpoint cannot run code.
"""

from __future__ import annotations

import io
import json
import os
import random
import shutil
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pipeline.errors import UserError
from pipeline.files import sha256, sync_directory, write_durably

PREFIX = "step-"
STATE = "state.pt"
MANIFEST = "manifest.json"


def rank_file(rank: int) -> str:
    return f"rank{rank}.pt"


def directory(run_dir: Path) -> Path:
    return run_dir / "checkpoints"


def published(run_dir: Path) -> list[Path]:
    """Every published checkpoint, oldest first (damaged ones included)."""
    return sorted(directory(run_dir).glob(f"{PREFIX}*"))


def latest(run_dir: Path) -> Path | None:
    """The newest checkpoint whose files match its manifest; a damaged one (a truncated or
    altered file) is reported and the one before it used."""
    found = published(run_dir)
    for path in reversed(found):
        problem = damage(path)
        if problem is None:
            return path
        print(f"warning: checkpoint {path} is damaged ({problem}): skipping it", file=sys.stderr)
    if found:
        raise UserError(
            f"every checkpoint under {directory(run_dir)} is damaged: restore one from a "
            "backup, or start a new run"
        )
    return None


def chosen(run_dir: Path, which: str | None = None) -> Path | None:
    """The checkpoint `which` names: None or "latest" (the newest intact), "best" (the best
    headline metric), "healthy" (the newest saved while the collapse guard saw no collapse:
    its last check passed or none had run; None if there is none), a step number, or a
    checkpoint directory's name or path."""
    if which in (None, "latest"):
        return latest(run_dir)
    if which == "healthy":  # the collapse guard's rollback target
        healthy = [p for p in published(run_dir) if _healthy(p)]
        if not healthy:
            return None
        path = healthy[-1]
    elif which == "best":
        scored = [(s, path) for path in published(run_dir) if (s := _score(path)) is not None]
        if not scored:
            raise UserError(f"--checkpoint best: no checkpoint of {run_dir} has a metric")
        path = min(scored)[1]
    elif which.isdigit():
        path = directory(run_dir) / f"{PREFIX}{int(which):08d}"
    else:
        path = Path(which) if Path(which).is_dir() else directory(run_dir) / which
    if not (path / STATE).is_file():
        names = ", ".join(p.name for p in published(run_dir)) or "none"
        raise UserError(f"--checkpoint {which}: no checkpoint at {path} (there are: {names})")
    problem = damage(path)
    if problem:
        raise UserError(f"--checkpoint {which}: {path} is damaged ({problem})")
    return path


def damage(path: Path) -> str | None:
    """What is wrong with a published checkpoint, or None. Checkpoints written before manifests
    existed cannot be checked and pass."""
    manifest = path / MANIFEST
    if not manifest.is_file():
        return None
    try:
        files = json.loads(manifest.read_text())["files"]
    except (ValueError, KeyError) as err:
        return f"{MANIFEST} unreadable: {err}"
    for name, expected in files.items():
        file = path / name
        if not file.is_file():
            return f"{name} is missing"
        if file.stat().st_size != expected["bytes"]:
            return f"{name} has {file.stat().st_size} bytes, {expected['bytes']} were written"
        if sha256(file) != expected["sha256"]:
            return f"{name} does not match its checksum"
    return None


def staging(run_dir: Path, step: int) -> Path:
    """Where every rank writes its part before the main process publishes the checkpoint."""
    path = directory(run_dir) / f".tmp-{PREFIX}{step:08d}"
    path.mkdir(parents=True, exist_ok=True)
    return path


def discard(run_dir: Path, step: int) -> None:
    """Drop a staged checkpoint that could not be completed (and the disk space it holds)."""
    shutil.rmtree(directory(run_dir) / f".tmp-{PREFIX}{step:08d}", ignore_errors=True)


def write(path: Path, payload: dict[str, Any]) -> None:
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    write_durably(path, buffer.getvalue())


def publish(
    run_dir: Path, step: int, keep: int, score: float | None = None, guard: dict | None = None
) -> Path:
    """Seal the staged directory with a manifest (every file's size and checksum, the
    headline metric `score` when one was measured at this step, lower is better, and the
    collapse guard's `{"healthy": ..., "actions": ...}` when it runs), rename it into place
    (atomic), then drop all but the newest `keep`, the best scored and the newest healthy."""
    stage = staging(run_dir, step)
    files = {
        str(f.relative_to(stage)): {"bytes": f.stat().st_size, "sha256": sha256(f)}
        for f in sorted(stage.rglob("*"))
        if f.is_file()
    }
    manifest = {"step": step, "score": score, "guard": guard, "files": files}
    write_durably(stage / MANIFEST, json.dumps(manifest, indent=1).encode())
    final = directory(run_dir) / f"{PREFIX}{step:08d}"
    if final.exists():
        shutil.rmtree(final)
    os.replace(stage, final)
    sync_directory(directory(run_dir))
    found = published(run_dir)
    keeping = set(found[-keep:])
    scored = [(s, path) for path in found if (s := _score(path)) is not None]
    if scored:
        keeping.add(min(scored)[1])
    keeping.update([path for path in found if _healthy(path)][-1:])
    for old in found:
        if old not in keeping:
            shutil.rmtree(old)
    return final


def manifest_of(path: Path) -> dict[str, Any]:
    """A checkpoint's manifest; {} when it has none or it is unreadable."""
    try:
        return json.loads((path / MANIFEST).read_text())
    except (OSError, ValueError):
        return {}


def _score(path: Path) -> float | None:
    return manifest_of(path).get("score")


def _healthy(path: Path) -> bool:
    return bool((manifest_of(path).get("guard") or {}).get("healthy"))


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
    state = {
        "python": [version, list(keys), gauss],
        "numpy": [kind, torch.from_numpy(np_keys.astype(np.int64)), pos, has_gauss, cached],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():  # this process's GPU: noise drawn on the device
        state["cuda"] = torch.cuda.get_rng_state()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    version, keys, gauss = state["python"]
    random.setstate((version, tuple(keys), gauss))
    kind, np_keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, np_keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda"])
