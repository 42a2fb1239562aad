"""Samples of a trained run as `ganpipe sample` and `ganpipe eval` draw them: the EMA generator
of the latest checkpoint, through discriminator rejection sampling when the run's config asks
for it (`rejection.temperature` > 0). The critic that sampling needs is fitted once per
checkpoint and kept in the run directory."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any, NamedTuple

import torch
from accelerate import Accelerator
from torch import nn

from pipeline.errors import UserError
from pipeline.metrics.evaluate import ImageProtocol, protocol_for
from pipeline.metrics.reference_stats import frechet_from_moments, moments, read_stats
from pipeline.metrics.shared import shared_rows
from pipeline.rejection import fit_critic, rejection_sample
from pipeline.runs import checkpoint
from pipeline.runs.directory import write_json
from pipeline.runs.loading import Loaded, load_models
from pipeline.sampling import generate


class Drawn(NamedTuple):
    samples: torch.Tensor
    labels: torch.Tensor | None
    step: int
    how: dict[str, Any]  # the sampling protocol: truncation, rejection and its acceptance


def draw(
    run_dir: Path,
    n: int,
    seed: int = 0,
    truncation: float | None = None,
    temperature: float | None = None,
) -> Drawn:
    """`n` samples of the run (seeded); `truncation` and `temperature` default to the config's
    eval.truncation and rejection.temperature."""
    return draw_from(run_dir, load_models(run_dir), n, seed, truncation, temperature)


def draw_from(
    run_dir: Path,
    loaded: Loaded,
    n: int,
    seed: int,
    truncation: float | None = None,
    temperature: float | None = None,
) -> Drawn:
    config = loaded.config
    truncation = config.eval.truncation if truncation is None else truncation
    temperature = config.rejection.temperature if temperature is None else temperature
    how: dict[str, Any] = {"truncation": truncation}
    batch_size = config.eval.batch_size
    device = "cuda" if torch.cuda.is_available() else "cpu"
    generator = loaded.generator.to(device)
    if temperature == 0:
        samples, labels = generate(generator, n, seed, batch_size, device, truncation)
        return Drawn(samples, labels, loaded.step, how)
    critic = critic_for(run_dir, loaded, device)  # does not depend on the temperature
    samples, labels, acceptance = rejection_sample(
        generator, critic, n, seed, temperature, batch_size, device, truncation
    )
    settings = dataclasses.asdict(config.rejection)
    how["rejection"] = {**settings, "temperature": temperature, "acceptance": acceptance}
    return Drawn(samples, labels, loaded.step, how)


def critic_for(run_dir: Path, loaded: Loaded, device: str = "cpu") -> nn.Module:
    """The rejection critic of the latest checkpoint: read back if it was fitted with the same
    settings, else fitted now and saved (atomically) as critic/step-NNNNNNNN.pt."""
    settings = dataclasses.asdict(loaded.config.rejection)
    settings.pop("temperature")  # sampling only: the same critic serves every temperature
    path = run_dir / "critic" / f"{checkpoint.PREFIX}{loaded.step:08d}.pt"
    critic = loaded.discriminator
    if path.is_file():
        saved = checkpoint.load(path)
        if saved["settings"] == settings:
            critic.load_state_dict(saved["critic"])
            return critic.eval()
    config = loaded.config
    critic = fit_critic(
        critic, loaded.generator, config.data.dir, config.rejection, config.seed, device
    )
    path.parent.mkdir(exist_ok=True)
    partial = path.with_suffix(".tmp")
    checkpoint.write(partial, {"settings": settings, "critic": critic.state_dict()})
    os.replace(partial, path)
    return critic


def evaluate_run(
    run_dir: Path,
    which: str | None = None,
    n: int | None = None,
    seed: int = 0,
    temperature: float | None = None,
    extractor: str | None = None,
    inception_weights: str | None = None,
    reference_stats: Path | None = None,
) -> dict[str, Any] | None:
    """`ganpipe eval`: samples of a checkpoint (`which`, default the newest; `n`, default
    eval.n_samples), measured with their dataset's protocol and saved as eval.json; with
    `reference_stats`, also their FID against those precomputed statistics. Under
    `accelerate launch`, every process draws and embeds its share of the same samples and the
    main process measures them (it alone returns the metrics)."""
    loaded = load_models(run_dir, which)
    config = loaded.config
    accelerator = Accelerator()
    protocol = protocol_for(
        loaded.dataset,
        extractor or config.eval.extractor,
        inception_weights or config.eval.inception_weights,
        accelerator.device,
    )
    if reference_stats is not None:  # checked before any sample is drawn
        if not isinstance(protocol, ImageProtocol):
            raise UserError(f"--reference-stats: {run_dir} is not a run on images")
        published = read_stats(reference_stats, protocol.extractor)
    n = n or config.eval.n_samples
    temperature = config.rejection.temperature if temperature is None else temperature
    if accelerator.num_processes == 1:
        drawn = draw_from(run_dir, loaded, n, seed, None, temperature)
        rows, labels, how = protocol.summarize(drawn.samples), drawn.labels, drawn.how
    elif temperature == 0:
        generator, truncation = loaded.generator.to(accelerator.device), config.eval.truncation
        rows, labels = shared_rows(
            generator, protocol, n, seed, config.eval.batch_size, truncation, accelerator
        )
        how = {"truncation": truncation}
    else:
        raise UserError(
            "rejection sampling evaluates on one process: run `ganpipe eval` without "
            "accelerate launch, or pass --temperature 0"
        )
    if rows is None:  # not the main process
        return None
    metrics = protocol.score(rows, labels, seed)
    metrics["protocol"].update(how, processes=accelerator.num_processes)
    if reference_stats is not None:
        metrics["fid_reference_stats"] = frechet_from_moments(*published[:2], *moments(rows))
        metrics["protocol"]["reference_stats"] = published[2]
    metrics = {"step": loaded.step, **metrics}
    write_json(run_dir / "eval.json", metrics)
    return metrics
