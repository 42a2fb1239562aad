"""NaN and infinity: skip the update that carries them, and roll back a run that keeps making
them (see `NonFiniteConfig`)."""

from __future__ import annotations

import torch
from torch import nn

from pipeline.config import NonFiniteConfig
from pipeline.errors import UserError


def gradient_norm(model: nn.Module) -> torch.Tensor:
    """The L2 norm of the model's gradients (those every rank shares once they are synced),
    as a 0-d tensor on the device: logged, and part of the finiteness check."""
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    if not grads:
        return torch.zeros((), device=next(model.parameters()).device)
    return torch.nn.utils.get_total_norm(grads)


def finite_update(loss: torch.Tensor, norm: torch.Tensor) -> torch.Tensor:
    """Whether the loss and the gradients' norm are both finite, as a 0-d bool tensor."""
    return torch.isfinite(loss.detach().sum() + norm)


class NonFiniteGuard:
    """Counts skipped iterations (D or G update skipped), in a row and in all, and the restores
    they caused; `lr_scale` multiplies both learning rates from then on."""

    def __init__(self, config: NonFiniteConfig, lr_scale: float = 1.0):
        self.config, self.lr_scale = config, lr_scale
        self.in_a_row = self.skipped = self.restores = 0

    def record(self, finite: bool) -> bool:
        """Note one iteration; True when it is time to restore the newest checkpoint."""
        self.in_a_row = 0 if finite else self.in_a_row + 1
        self.skipped += not finite
        return self.in_a_row >= self.config.restore_after

    def restored(self) -> None:
        self.restores += 1
        if self.restores > self.config.max_restores:
            raise UserError(
                f"non-finite losses or gradients kept coming back after "
                f"{self.config.max_restores} restores (nonfinite.max_restores): lower the "
                "learning rates or the penalties' weights, or try train.mixed_precision=no"
            )
        self.lr_scale *= self.config.lr_factor
        self.in_a_row = 0

    def stats(self) -> dict[str, float]:
        return {"nonfinite/skipped": self.skipped, "nonfinite/restores": self.restores,
                "lr_scale": self.lr_scale}  # fmt: skip
