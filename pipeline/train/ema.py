"""Exponential moving average of the generator's weights, the one sampled and evaluated."""

from __future__ import annotations

import copy

import torch
from torch import nn


class EMA:
    """Averages parameters and floating-point buffers (batch-norm running statistics, so they
    match the averaged weights); integer buffers are copied. Before `start` steps the average
    just tracks the live weights; after it, the decay ramps up as (1 + k) / (10 + k) towards
    `decay`, so the average never drags in weights from long before the current ones."""

    def __init__(self, model: nn.Module, decay: float, start: int = 0):
        self.model = copy.deepcopy(model).eval().requires_grad_(False)
        self.decay, self.start = decay, start

    def decay_at(self, step: int) -> float:
        k = step - self.start
        return 0.0 if k < 0 else min(self.decay, (1 + k) / (10 + k))

    @torch.no_grad()
    def update(self, model: nn.Module, step: int) -> None:
        weight = 1.0 - self.decay_at(step)
        mine = [*self.model.parameters(), *self.model.buffers()]
        live = [*model.parameters(), *model.buffers()]
        pairs = list(zip(mine, live, strict=True))
        averages = [a for a, _ in pairs if a.is_floating_point()]
        currents = [c for a, c in pairs if a.is_floating_point()]
        if averages:  # one fused update of every tensor, not a kernel per tensor
            torch._foreach_lerp_(averages, currents, weight)
        for average, current in pairs:
            if not average.is_floating_point():
                average.copy_(current)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return self.model.state_dict()

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.model.load_state_dict(state)
