"""Stopping early without losing work: on SIGUSR1 or SIGTERM to any training process, or when
a file named STOP appears in the run directory, every rank checkpoints at the same step
boundary and leaves. The file is how a batch script reaches all ranks on all nodes whatever
launcher sits between it and them (launchers do not forward SIGUSR1)."""

from __future__ import annotations

import signal
from pathlib import Path

import torch
from accelerate import Accelerator

STOP_FILE = "STOP"
EXIT_STOPPED = 75  # EX_TEMPFAIL: stopped before the last step, resume to finish
STOP_SIGNALS = (signal.SIGUSR1, signal.SIGTERM)
CHECK_EVERY = 10  # steps between the ranks' votes: one tiny all-reduce in ten steps


class StopRequest:
    def __init__(self, run_dir: Path, accelerator: Accelerator):
        self.file = run_dir / STOP_FILE
        self.accelerator = accelerator
        self.reason: str | None = None
        self.previous = {n: signal.signal(n, self._on_signal) for n in STOP_SIGNALS}

    def _on_signal(self, number: int, frame) -> None:
        self.reason = signal.Signals(number).name

    def agreed(self, step: int) -> bool:
        """True on every rank at once when any rank was asked to stop (checked every few steps,
        so all ranks take the same decision at the same step)."""
        if step % CHECK_EVERY:
            return False
        if self.reason is None and self.file.is_file():
            self.reason = f"{self.file} exists"
        if self.accelerator.num_processes == 1:  # nobody to agree with: no device round trip
            return self.reason is not None
        vote = torch.tensor([self.reason is not None], device=self.accelerator.device)
        return bool(self.accelerator.reduce(vote.int(), "sum").item())

    def clear(self) -> None:
        """Drop a request already served (a requeued job must not stop again at once)."""
        if self.accelerator.is_main_process:
            self.file.unlink(missing_ok=True)

    def close(self) -> None:
        self.clear()
        for number, handler in self.previous.items():
            signal.signal(number, handler)
