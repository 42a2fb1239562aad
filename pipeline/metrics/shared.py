"""Evaluation during training, shared by the processes: each generates its share of the
samples and turns them into features (the expensive part); the main process gathers the
features and measures them. The samples, and so the metrics, do not depend on the number of
processes."""

from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist
from accelerate import Accelerator
from torch import nn

from pipeline.config import Config
from pipeline.data.description import Dataset
from pipeline.errors import UserError
from pipeline.metrics.evaluate import Protocol, UnmeasuredImages, protocol_for
from pipeline.sampling import generate, interleave


def training_protocol(config: Config, dataset: Dataset, device, main: bool) -> Protocol:
    """The dataset's protocol. When `eval.extractor: auto` finds no extractor for an image
    set, its samples are drawn but not measured (said once) and training goes on; a chosen
    extractor that is missing is an error."""
    try:
        return protocol_for(dataset, config.eval.extractor, config.eval.inception_weights, device)
    except UserError as error:
        if config.eval.extractor != "auto":
            raise
        if main:
            print(f"no evaluation during training: {error}", flush=True)
        return UnmeasuredImages(dataset)


def share_rows(rows: torch.Tensor, batch: int, accelerator: Accelerator) -> torch.Tensor | None:
    """Every process's rows, in sample order, on the main process; None on the others."""
    if accelerator.num_processes == 1:
        return rows
    shares = [None] * accelerator.num_processes if accelerator.is_main_process else None
    dist.gather_object(rows, shares, dst=0)  # to the main process only: it alone needs them
    return interleave(shares, batch) if accelerator.is_main_process else None


def shared_rows(
    generator: nn.Module,
    protocol: Protocol,
    n: int,
    seed: int,
    batch: int,
    truncation: float,
    accelerator: Accelerator,
) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """`n` samples drawn and summarized by every process, each its share: the rows in sample
    order on the main process (None on the others), and the samples' labels."""
    share = (accelerator.process_index, accelerator.num_processes)
    mine, labels = generate(generator, n, seed, batch, accelerator.device, truncation, share)
    return share_rows(protocol.summarize(mine), batch, accelerator), labels


def evaluate_shared(
    generator: nn.Module, protocol: Protocol, config: Config, accelerator: Accelerator
) -> dict[str, Any] | None:
    """The metrics on the main process, None on the others."""
    n, batch, truncation = (
        config.eval.n_samples_during_training,
        config.eval.batch_size,
        config.eval.truncation,
    )
    rows, labels = shared_rows(generator, protocol, n, config.seed, batch, truncation, accelerator)
    if rows is None:
        return None
    metrics = protocol.score(rows, labels, config.seed)
    metrics["protocol"]["truncation"] = truncation
    return metrics
