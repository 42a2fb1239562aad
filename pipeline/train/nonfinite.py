"""NaN and infinity: skip the update that carries them, and roll back a run that keeps making
them (see `NonFiniteConfig`). The decisions stay on the device: the host reads them only every
`restore_after` iterations, so a step never waits for the device to finish."""

from __future__ import annotations

import torch
from torch import nn

from pipeline.config import NonFiniteConfig
from pipeline.errors import UserError


def gradient_norm(parameters: list[nn.Parameter]) -> torch.Tensor:
    """The L2 norm of the parameters' gradients (those every rank shares once they are
    synced), as a 0-d tensor on the device: logged, and part of the finiteness check."""
    grads = [p.grad for p in parameters if p.grad is not None]
    if not grads:
        return torch.zeros((), device=parameters[0].device)
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
    """Counts skipped iterations (D or G update skipped), in a row and in all, and the
    restores they caused. An iteration's flags wait on the device until the host looks,
    every `restore_after` iterations (or for the log), and reads them all at once."""

    def __init__(self, config: NonFiniteConfig):
        self.config = config
        self.pending: list[list[torch.Tensor | bool]] = []  # flags the host has not read
        self.in_a_row = self.longest = self.skipped = 0  # longest: run since the last look
        self.restores = 0

    def record(self, finite: list[torch.Tensor | bool]) -> bool:
        """Note one iteration (`finite`: each of its updates' 0-d bool flag); True when
        `restore_after` iterations in a row were skipped and it is time to restore the newest
        checkpoint. The host looks every `restore_after` iterations, so a restore can come
        that much later."""
        self.pending.append(finite)
        if len(self.pending) < self.config.restore_after:
            return False
        self._count()
        due = self.longest >= self.config.restore_after
        self.longest = 0
        return due

    def _count(self) -> None:
        """Reads the pending flags (one host read) into the counts."""
        if not self.pending:
            return
        flags = torch.stack([torch.as_tensor(f) for step in self.pending for f in step])
        whole = flags.reshape(len(self.pending), -1).all(1).tolist()
        self.pending.clear()
        for ok in whole:
            self.in_a_row = 0 if ok else self.in_a_row + 1
            self.longest = max(self.longest, self.in_a_row)
            self.skipped += not ok

    def restored(self) -> float:
        """Note a restore; returns the factor for both learning rates from now on."""
        self.restores += 1
        if self.restores > self.config.max_restores:
            raise UserError(
                f"non-finite losses or gradients kept coming back after "
                f"{self.config.max_restores} restores (nonfinite.max_restores): lower the "
                "learning rates or the penalties' weights, or try train.mixed_precision=no"
            )
        self.in_a_row = self.longest = 0
        return self.config.lr_factor

    def stats(self) -> dict[str, float]:
        self._count()
        return {"nonfinite/skipped": self.skipped, "nonfinite/restores": self.restores}
