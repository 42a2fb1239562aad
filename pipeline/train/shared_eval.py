"""Evaluation during training, shared by the processes: each generates its share of the
samples (the generator's forward is most of the work), the main process gathers and measures
them. The samples, and so the metrics, do not depend on the number of processes."""

from __future__ import annotations

from typing import Any

import torch.distributed as dist
from accelerate import Accelerator
from torch import nn

from pipeline.config import Config
from pipeline.metrics.evaluate import measure
from pipeline.sampling import generate, interleave


def evaluate_shared(
    generator: nn.Module, config: Config, index: dict[str, Any], accelerator: Accelerator
) -> dict[str, Any] | None:
    """The metrics on the main process, None on the others."""
    n, batch, truncation = (
        config.eval.n_samples_during_training,
        config.eval.batch_size,
        config.eval.truncation,
    )
    share = (accelerator.process_index, accelerator.num_processes)
    mine, labels = generate(generator, n, config.seed, batch, accelerator.device, truncation, share)
    shares = [mine]
    if accelerator.num_processes > 1:  # to the main process only: it alone needs them all
        shares = [None] * accelerator.num_processes if accelerator.is_main_process else None
        dist.gather_object(mine, shares, dst=0)
    if not accelerator.is_main_process:
        return None
    metrics = measure(interleave(shares, batch), labels, config.data.dir, index, config.seed)
    metrics["protocol"]["truncation"] = truncation
    return metrics
