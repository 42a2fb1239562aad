"""Where a run stands: the counters a checkpoint saves whole, a resume restores whole, and a
rollback rewinds in one way. The loop reads and advances them here and nowhere else."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any


@dataclass
class Progress:
    step: int = 0  # G updates
    images_seen: int = 0  # real images D has been shown, all ranks together
    d_steps: int = 0  # D updates: lazy regularizers and ADA count these, not `step`
    lr_scale: float = 1.0  # both learning rates, cut by each non-finite restore
    interventions: int = 0  # collapse-guard interventions in force, from the first

    def counters(self) -> dict[str, Any]:
        """What state.pt records."""
        return dataclasses.asdict(self)

    @classmethod
    def resumed(cls, counters: dict[str, Any], n_dis: int, interventions: int) -> Progress:
        """A checkpoint's progress. Older checkpoints lack D's step count (it was step x n_dis
        before an intervention could change n_dis) and the interventions (the checkpoint's
        manifest has them, which is read first, to configure the run)."""
        progress = cls(lr_scale=counters.get("lr_scale", 1.0), interventions=interventions)
        progress.rewind(counters, n_dis)
        return progress

    def rewind(self, counters: dict[str, Any], n_dis: int) -> None:
        """Back to a checkpoint's step, images and D steps. The learning-rate cut and the
        interventions stay: a rollback is made to go on differently from there."""
        self.step, self.images_seen = counters["step"], counters["images_seen"]
        self.d_steps = counters.get("d_steps", counters["step"] * n_dis)
