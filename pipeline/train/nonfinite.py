"""NaN and infinity: skip the update that carries them, and roll back a run that keeps making
them (see `NonFiniteConfig`). The decisions stay on the device: the host reads them only every
`restore_after` iterations, so a step never waits for the device to finish."""

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


def step_if(optimizer: torch.optim.Optimizer, finite: torch.Tensor) -> None:
    """The optimizer's update where `finite` (0-d bool) holds. A fused optimizer takes the flag
    as its skip signal on the device; any other has the host read it (a sync)."""
    if optimizer.defaults.get("fused"):
        optimizer.found_inf = (~finite).float()
        optimizer.step()
    elif finite:
        optimizer.step()


def keep_if(finite: torch.Tensor, state: dict[str, torch.Tensor], before: dict[str, torch.Tensor]):
    """Puts the values of `before` back into `state` (in place) where `finite` is false."""
    for name, value in state.items():
        value.copy_(torch.where(finite, value, before[name]))


class NonFiniteGuard:
    """Counts skipped iterations (D or G update skipped), in a row and in all, on the device,
    and the restores they caused; `lr_scale` multiplies both learning rates from then on."""

    def __init__(self, config: NonFiniteConfig, lr_scale: float = 1.0, device="cpu"):
        self.config, self.lr_scale = config, lr_scale
        self.in_a_row = torch.zeros((), dtype=torch.long, device=device)
        self.longest = torch.zeros_like(self.in_a_row)  # the longest run since the host looked
        self.skipped = torch.zeros_like(self.in_a_row)
        self.iterations = self.restores = 0

    def record(self, finite: torch.Tensor | bool) -> bool:
        """Note one iteration (`finite`: all its updates were); True when `restore_after`
        iterations in a row were skipped and it is time to restore the newest checkpoint. The
        host looks every `restore_after` iterations, so a restore can come that much later."""
        bad = (~torch.as_tensor(finite, device=self.skipped.device)).long()
        self.in_a_row.add_(1).mul_(bad)
        torch.maximum(self.longest, self.in_a_row, out=self.longest)
        self.skipped.add_(bad)
        self.iterations += 1
        if self.iterations % self.config.restore_after:
            return False
        due = bool(self.longest >= self.config.restore_after)
        self.longest.zero_()
        return due

    def restored(self) -> None:
        self.restores += 1
        if self.restores > self.config.max_restores:
            raise UserError(
                f"non-finite losses or gradients kept coming back after "
                f"{self.config.max_restores} restores (nonfinite.max_restores): lower the "
                "learning rates or the penalties' weights, or try train.mixed_precision=no"
            )
        self.lr_scale *= self.config.lr_factor
        self.in_a_row.zero_()
        self.longest.zero_()

    def stats(self) -> dict[str, float | torch.Tensor]:
        return {"nonfinite/skipped": self.skipped, "nonfinite/restores": self.restores,
                "lr_scale": self.lr_scale}  # fmt: skip
