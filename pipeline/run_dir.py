"""One run = one directory: the resolved config, metrics, samples, checkpoints, W&B files."""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any, NamedTuple

import torch
from torch import nn

from pipeline.config import Config, load_config, save_config
from pipeline.data.description import Dataset
from pipeline.data.reader import dataset_for
from pipeline.errors import UserError
from pipeline.models import build_models
from pipeline.train import checkpoint
from pipeline.train.growth import growth_for

CONFIG = "config.yaml"
RUN_INFO = "run.json"


class Loaded(NamedTuple):
    generator: nn.Module
    discriminator: nn.Module
    config: Config
    dataset: Dataset
    step: int


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


def load_models(run_dir: Path, which: str | None = None) -> Loaded:
    """The EMA generator and the discriminator of a checkpoint (`which`, see
    `checkpoint.chosen`; default the latest), in eval mode."""
    config = saved_config(run_dir)
    path = checkpoint.chosen(run_dir, which)
    if path is None:
        raise UserError(f"{run_dir} has no checkpoint yet: train first (ganpipe train ...)")
    dataset = dataset_for(config.data)
    generator, discriminator = build_models(config.model, dataset)
    state = checkpoint.load(path / checkpoint.STATE)
    generator.load_state_dict(state["G_ema"])
    discriminator.load_state_dict(state["D"])
    growth = growth_for(config.model, generator, config.train.phase_images)
    if growth:
        growth.apply(state["images_seen"], generator, discriminator)
    return Loaded(generator.eval(), discriminator.eval(), config, dataset, state["step"])


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
