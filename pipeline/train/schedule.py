"""Learning-rate schedule: constant, then (optionally) a linear fall to 1% over the last part
of training. A function of the step alone, so a resumed run continues on the same curve. And
the optimizer settings of style-based families under lazy regularization."""

from __future__ import annotations

import torch

from pipeline.config import Config
from pipeline.models.registry import FAMILIES

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


def optimizer_settings(config: Config) -> dict[str, tuple[float, tuple[float, float]]]:
    """Base learning rate and betas of G ("g") and D ("d"). For style-based families, as
    StyleGAN2 does it: a network whose regularizer runs lazily, every k-th step, gets lr x c
    and betas ** c with c = k / (k + 1), the rates of a step that folds in its share of the
    regularizer's steps. The other families keep the configured values."""
    train, reg = config.train, config.regularize
    intervals = {"g": reg.path_length_every if reg.path_length else 1,
                 "d": reg.r1_every if reg.r1 else 1}  # fmt: skip
    settings = {}
    for name, lr, betas in (("g", train.lr_g, train.betas_g), ("d", train.lr_d, train.betas_d)):
        k = intervals[name] if FAMILIES[config.model.family].style_based else 1
        c = k / (k + 1) if k > 1 else 1.0
        settings[name] = (lr * c, (betas[0] ** c, betas[1] ** c))
    return settings
