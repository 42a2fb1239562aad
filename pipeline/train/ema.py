"""Exponential moving average of the generator's weights, the one sampled and evaluated."""

from __future__ import annotations

import copy

import torch
from torch import nn
from torch.nn.utils.parametrizations import _SpectralNorm


class EMA:
    """Averages parameters and floating-point buffers (batch-norm running statistics, so they
    match the averaged weights); integer buffers and spectral norm's singular vectors are
    copied: an average of unit vectors is shorter than one, and the norm it estimates from
    them would scale every normalised weight up. Before `start` steps the average
    just tracks the live weights; after it, the decay ramps up as (1 + k) / (10 + k) towards
    `decay`, so the average never drags in weights from long before the current ones.
    StyleGAN2's form instead, when `half_life` (images) is set: a decay of
    0.5 ** (images per step / half-life), the half-life capped at `rampup` x the images seen
    so far when `rampup` is set."""

    def __init__(self, model: nn.Module, decay: float, start: int = 0, half_life: int = 0,
                 rampup: float = 0.0, images_per_step: int = 1):  # fmt: skip
        self.model = copy.deepcopy(model).eval().requires_grad_(False)
        self.decay, self.start = decay, start
        self.half_life, self.rampup, self.images_per_step = half_life, rampup, images_per_step
        self._source: nn.Module | None = None  # the live model the pairs below belong to

    def decay_at(self, step: int) -> float:
        k = step - self.start
        if k < 0:
            return 0.0
        if self.half_life:
            half_life = self.half_life
            if self.rampup:
                half_life = min(half_life, (step + 1) * self.images_per_step * self.rampup)
            return 0.5 ** (self.images_per_step / max(half_life, 1e-8))
        return min(self.decay, (1 + k) / (10 + k))

    @torch.no_grad()
    def update(self, model: nn.Module, step: int) -> None:
        if self._source is not model:
            self._pair_with(model)
        if self._averages:  # one fused update of every tensor, not a kernel per tensor
            torch._foreach_lerp_(self._averages, self._currents, 1.0 - self.decay_at(step))
        for average, current in self._copied:
            average.copy_(current)

    def _pair_with(self, model: nn.Module) -> None:
        """Each tensor of the average beside its live one, listed once: walking the module
        tree at every step costs as much as the update itself on a small model."""
        mine = [*self.model.parameters(), *self.model.buffers()]
        live = [*model.parameters(), *model.buffers()]
        pairs = list(zip(mine, live, strict=True))
        vectors = singular_vectors(self.model)
        averaged = [a.is_floating_point() and id(a) not in vectors for a, _ in pairs]
        self._averages = [a for (a, _), avg in zip(pairs, averaged, strict=True) if avg]
        self._currents = [c for (_, c), avg in zip(pairs, averaged, strict=True) if avg]
        self._copied = [pair for pair, avg in zip(pairs, averaged, strict=True) if not avg]
        self._source = model

    def state_dict(self) -> dict[str, torch.Tensor]:
        return self.model.state_dict()

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.model.load_state_dict(state)


def singular_vectors(model: nn.Module) -> set[int]:
    """The ids of spectral norm's power-iteration vectors in `model`."""
    return {id(b) for m in model.modules() if isinstance(m, _SpectralNorm) for b in m.buffers()}
