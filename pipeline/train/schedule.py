"""Learning-rate schedule: constant, then (optionally) a linear fall to 1% over the last part
of training. A function of the step alone, so a resumed run continues on the same curve."""

from __future__ import annotations

import torch

FINAL_FACTOR = 0.01


def lr_factor(step: int, steps: int, decay_from: float) -> float:
    """1 until `decay_from` x steps, then linearly down to FINAL_FACTOR at the last step."""
    start = decay_from * steps
    if step < start or decay_from >= 1:
        return 1.0
    progress = (step - start) / max(steps - start, 1)
    return 1.0 - (1.0 - FINAL_FACTOR) * min(progress, 1.0)


def set_learning_rates(pairs: list[tuple[torch.optim.Optimizer, float]], factor: float) -> None:
    for optimizer, base in pairs:
        for group in optimizer.param_groups:
            group["lr"] = base * factor
