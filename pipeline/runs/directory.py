"""One run = one directory: the resolved config, metrics, samples, checkpoints, W&B files."""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch

from pipeline.config import Config, load_config, save_config
from pipeline.errors import UserError
from pipeline.runs import checkpoint

CONFIG = "config.yaml"
RUN_INFO = "run.json"


def start(run_dir: Path, config: Config, resume: bool) -> None:
    """Create or reopen the run directory (main process only)."""
    has_checkpoints = bool(checkpoint.published(run_dir))
    if has_checkpoints and not resume:
        raise UserError(
            f"{run_dir} already holds checkpoints: add --resume to continue that "
            "run, or pass a new --run-dir"
        )
    if resume and not has_checkpoints:
        raise UserError(f"--resume: no checkpoint under {checkpoint.directory(run_dir)}")
    for sub in ("samples", "checkpoints"):
        (run_dir / sub).mkdir(parents=True, exist_ok=True)
    save_config(config, run_dir / CONFIG)
    if not (run_dir / RUN_INFO).is_file():
        # The tracker run id lives with the run, so a resumed or requeued job continues it.
        write_json(run_dir / RUN_INFO, {"run_id": uuid.uuid4().hex[:8], "name": config.name})


def read_info(run_dir: Path) -> dict[str, Any]:
    return json.loads((run_dir / RUN_INFO).read_text())


def saved_config(run_dir: Path) -> Config:
    path = run_dir / CONFIG
    if not path.is_file():
        raise UserError(f"{run_dir} is not a run directory ({CONFIG} missing)")
    return load_config(path)


def write_json(path: Path, values: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(values, indent=2))


def digest(named_tensors: Iterable[tuple[str, torch.Tensor]]) -> str:
    """A hash of named tensors' bytes (a model's parameters or buffers): equal on every rank
    when data parallelism is correct."""
    sha = hashlib.sha256()
    for name, tensor in sorted(named_tensors, key=lambda item: item[0]):
        sha.update(name.encode())
        sha.update(tensor.detach().cpu().double().contiguous().numpy().tobytes())
    return sha.hexdigest()
