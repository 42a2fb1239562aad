"""A checkpoint's models, built for the run's data and config, for sampling, evaluation and
export."""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

from torch import nn

from pipeline.config import Config
from pipeline.data.description import Dataset
from pipeline.data.reader import dataset_for
from pipeline.errors import UserError
from pipeline.models import build_models
from pipeline.models.growth import growth_for
from pipeline.runs import checkpoint
from pipeline.runs.directory import saved_config


class Loaded(NamedTuple):
    generator: nn.Module
    discriminator: nn.Module
    config: Config
    dataset: Dataset
    step: int


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
    if growth:  # checkpoints written before the stage was saved hold the images shown
        stage = state.get("stage") or growth.stage(state["images_seen"])
        for network in (generator, discriminator):
            network.set_stage(*stage)
    return Loaded(generator.eval(), discriminator.eval(), config, dataset, state["step"])
