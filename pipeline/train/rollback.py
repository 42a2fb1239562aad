"""What the loop does when a guard says so: back to a checkpoint, then on differently. The
guards (pipeline/train/nonfinite.py, pipeline/train/collapse_guard.py) only decide."""

from __future__ import annotations

from pathlib import Path

from pipeline.config import Config, intervention_overrides, with_overrides
from pipeline.data.description import Dataset
from pipeline.errors import UserError
from pipeline.runs import checkpoint
from pipeline.train.collapse_guard import CollapseGuard
from pipeline.train.ema import EMA
from pipeline.train.nonfinite import NonFiniteGuard
from pipeline.train.progress import Progress
from pipeline.train.state import agreed_checkpoint, restore
from pipeline.train.steps import GAN
from pipeline.train.toolbox import build_toolbox


def restore_finite(gan: GAN, ema: EMA, run_dir: Path, guard: NonFiniteGuard,
                   progress: Progress, n_dis: int, tracker) -> None:  # fmt: skip
    """Back to the newest checkpoint, with lower learning rates; the data stream and the
    random generators go on (replaying them would replay the failure)."""
    if not checkpoint.published(run_dir):
        raise UserError(
            f"non-finite losses or gradients {guard.in_a_row} iterations in a row before the "
            "first checkpoint: lower the learning rates, or checkpoint earlier "
            "(train.checkpoint_every)"
        )
    progress.lr_scale *= guard.restored()
    failed_at = progress.step
    counters, _ = restore(gan, ema, run_dir, gan.g_accelerator.process_index, strict=False)
    progress.rewind(counters, n_dis)
    tracker.alert(
        "non-finite training restored",
        f"{guard.config.restore_after} iterations in a row had non-finite losses or gradients "
        f"(step {failed_at}): restored the checkpoint of step {progress.step}, learning rates "
        f"now x{progress.lr_scale:g} (restore {guard.restores} of at most "
        f"{guard.config.max_restores})",
        failed_at,
    )


def intervene(gan: GAN, ema: EMA, run_dir: Path, guard: CollapseGuard, config: Config,
              dataset: Dataset, progress: Progress,
              tracker) -> tuple[Config, bool]:  # fmt: skip
    """Roll back to the newest healthy checkpoint and apply the next intervention, or only
    alert when none is left (every process). Returns the config now in force and whether the
    run went back (to `progress.step`)."""
    failed_at = progress.step
    seen = f"{', '.join(guard.last_failing)} at {guard.config.patience} check(s) in a row"
    seen += f" (step {failed_at})"
    item = guard.next_intervention(progress.interventions)
    if item is None:
        guard.acted(rolled_back=False)
        tracker.alert("collapse", f"{seen}; no intervention left, training goes on", failed_at)
        return config, False
    acc = gan.g_accelerator
    config = with_overrides(config, intervention_overrides([item]))
    ema.decay = config.train.ema_decay
    before, gan.toolbox = gan.toolbox, build_toolbox(config, dataset, acc)
    rolled_back = agreed_checkpoint(acc, run_dir, "healthy") is not None
    if rolled_back:  # the toolbox as it was there; what it has gained since starts fresh
        counters, _ = restore(gan, ema, run_dir, acc.process_index, "healthy", strict=False)
        progress.rewind(counters, config.train.n_dis)
        where = f"rolled back to step {progress.step} (no collapse seen there)"
    else:
        gan.toolbox.stateful.load_state_dict(before.stateful.state_dict(), strict=False)
        where = "every checkpoint so far was saved during the collapse, so from here"
    guard.acted(rolled_back)
    progress.interventions += 1
    total = len(guard.config.interventions)
    applied = f"applied {item} ({progress.interventions}/{total})"
    tracker.alert("collapse", f"{seen}: {where}, {applied}", failed_at)
    tracker.log({"guard/actions": progress.interventions}, failed_at)
    return config, rolled_back
