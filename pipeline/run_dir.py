"""One run = one directory: the resolved config, metrics, samples, checkpoints, W&B files."""

from __future__ import annotations

import hashlib
import json
import uuid
from pathlib import Path
from typing import Any

from torch import nn

from pipeline.config import Config, load_config, save_config
from pipeline.data.reader import dataset_index
from pipeline.errors import UserError
from pipeline.models import build_models
from pipeline.train import checkpoint
from pipeline.train.growth import growth_for

CONFIG = "config.yaml"
RUN_INFO = "run.json"


def start(run_dir: Path, config: Config, resume: bool) -> None:
    """Create or reopen the run directory (main process only)."""
    has_checkpoints = checkpoint.latest(run_dir) is not None
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


def load_generator(run_dir: Path) -> tuple[nn.Module, Config, dict[str, Any], int]:
    """The EMA generator of the latest checkpoint, with its config, dataset index and step."""
    config = saved_config(run_dir)
    latest = checkpoint.latest(run_dir)
    if latest is None:
        raise UserError(f"{run_dir} has no checkpoint yet: train first (ganpipe train ...)")
    index = dataset_index(config.data)
    generator, _ = build_models(config.model, index)
    state = checkpoint.load(latest / checkpoint.STATE)
    generator.load_state_dict(state["G_ema"])
    growth = growth_for(generator, config.train.phase_images)
    if growth:
        growth.apply(state["images_seen"], generator)
    return generator.eval(), config, index, state["step"]


def evaluate_latest(run_dir: Path, n: int | None = None, seed: int = 0) -> dict[str, Any]:
    """`ganpipe eval`: the EMA generator of the newest checkpoint, measured with its dataset's
    protocol (`n` samples, default eval.n_samples) and saved as eval.json."""
    from pipeline.metrics.evaluate import evaluate

    generator, config, index, step = load_generator(run_dir)
    metrics = evaluate(
        generator,
        config.data.dir,
        index,
        n or config.eval.n_samples,
        seed,
        config.eval.batch_size,
        truncation=config.eval.truncation,
    )
    metrics = {"step": step, **metrics}
    write_json(run_dir / "eval.json", metrics)
    return metrics


def write_json(path: Path, values: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(values, indent=2))


def parameter_digest(model: nn.Module) -> str:
    """A hash of the parameters' bytes: equal on every rank when data parallelism is correct."""
    digest = hashlib.sha256()
    for name, p in sorted(model.named_parameters()):
        digest.update(name.encode())
        digest.update(p.detach().cpu().float().contiguous().numpy().tobytes())
    return digest.hexdigest()
