"""Exponential moving average of the generator's weights, the one sampled and evaluated."""

from __future__ import annotations

import copy

import torch
from torch import nn


class EMA:
    """Parameters averaged with `decay`; buffers (batch-norm statistics, spectral-norm vectors)
    copied from the live generator, as BigGAN and StyleGAN do. Before `start` steps the
    average simply tracks the live weights, so early noise is not baked in."""

    def __init__(self, model: nn.Module, decay: float, start: int = 0):
        self.model = copy.deepcopy(model).eval().requires_grad_(False)
        self.decay, self.start = decay, start

    @torch.no_grad()
    def update(self, model: nn.Module, step: int) -> None:
        weight = 1.0 - self.decay if step >= self.start else 1.0
        averaged = list(self.model.parameters())
        torch._foreach_lerp_(averaged, [p.detach() for p in model.parameters()], weight)
        for mine, theirs in zip(self.model.buffers(), model.buffers(), strict=True):
            mine.copy_(theirs)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return self.model.state_dict()

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.model.load_state_dict(state)
