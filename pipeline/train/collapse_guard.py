"""The collapse guard: cheap online monitors of mode collapse (BENCHMARKS.md section 5) and
the decision to act on them (see `CollapseGuardConfig`); the loop acts
(pipeline/train/rollback.py).

Every `every` steps the generator draws `samples` points or images (shared by the
processes); the main process compares them with a fixed real set drawn at the start
(from every shard alike):
recall (k = 3) and coverage (k = 5) of the real set, the share of statistically different
k-means cells, the entropy of the predicted classes, and D's accuracy. A check fails when a
watched signal crosses its threshold; `patience` failures in a row trigger the loop's
rollback and the next intervention.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator
from accelerate.utils import broadcast_object_list
from torch import nn

from pipeline.config import CollapseGuardConfig, Config
from pipeline.data.reader import spread_sample
from pipeline.errors import UserError
from pipeline.metrics.bins import cell_shares, different_bins, kmeans
from pipeline.metrics.evaluate import Protocol, normalised_entropy
from pipeline.metrics.prdc import prdc
from pipeline.metrics.shared import share_rows
from pipeline.runs import checkpoint
from pipeline.sampling import generate, share_of
from pipeline.tracking import Tracker
from pipeline.train.state import agreed_checkpoint
from pipeline.train.steps import GAN

BINS = 100


class CollapseGuard:
    def __init__(self, config: Config, protocol: Protocol, accelerator: Accelerator):
        self.config: CollapseGuardConfig = config.collapse_guard
        self.protocol, self.accelerator, self.seed = protocol, accelerator, config.seed
        self.batch, self.pack = config.eval.batch_size, config.model.pack  # D judges packs
        self.real_x, self.real_y = spread_sample(config.data.dir, self.config.real_samples)
        self.real, _ = protocol.monitor_rows(self.real_x)
        self.centres = kmeans(self.real, min(BINS, len(self.real) // 2), config.seed)
        self.real_shares = cell_shares(self.real, self.centres)
        self.in_a_row = 0
        # No collapse seen: the last check passed, or none has run yet (before `start`).
        self.healthy = True
        self.last_failing: list[str] = []

    def due(self, step: int) -> bool:
        return step >= self.config.start and step % self.config.every == 0

    def watch(self, gan: GAN, tracker: Tracker, step: int) -> bool:
        """One check (every process): its signals logged as guard/*, the verdict shared; True
        when it is time to intervene."""
        signals = self.check(gan.g_bare, gan.d_bare)
        verdict = [self.failing(signals) if signals is not None else None]
        broadcast_object_list(verdict)  # every process acts on the main process's verdict
        due = self.record(verdict[0])
        if signals is not None:
            logged = {f"guard/{k}": v for k, v in signals.items()}
            tracker.log({**logged, **self.stats()}, step)
        return due

    def health(self, interventions: int) -> dict[str, Any]:
        """What a checkpoint saved now records for the guard (`interventions` in force)."""
        return {"healthy": self.healthy, "actions": interventions}

    def check(self, generator: nn.Module, discriminator: nn.Module) -> dict[str, float] | None:
        """The signals (on the main process; None on the others), from samples every process
        draws a share of. Call on every process."""
        acc = self.accelerator
        share = (acc.process_index, acc.num_processes)
        # A seed of its own: the same latents at every check, so the signals follow the
        # generator alone, and the training random generators are left alone.
        images, labels = generate(
            generator, self.config.samples, self.seed + 7919, self.batch, acc.device, 0.0, share
        )
        labels = None if labels is None else share_of(labels, self.batch, share)
        accuracy = self.d_accuracy(discriminator, images, labels)
        features, classes = self.protocol.monitor_rows(images)
        features = share_rows(features, self.batch, acc)
        if self.protocol.classes:
            classes = share_rows(classes, self.batch, acc)
        if features is None:
            return None
        measured = prdc(self.real, features)
        signals = {k: measured[k] for k in ("precision", "recall", "coverage")}
        signals["different_bins"] = different_bins(
            self.real_shares, len(self.real), features, self.centres
        )
        if self.protocol.classes:
            signals["class_entropy"] = normalised_entropy(classes, self.protocol.classes)
        signals["d_accuracy"] = accuracy
        return signals

    @torch.no_grad()
    def d_accuracy(
        self, discriminator: nn.Module, fake: torch.Tensor, fake_y: torch.Tensor | None
    ) -> float:
        """D's accuracy on this process's generated share and its share of the real set,
        summed over processes: near 1, D tells them apart too easily."""
        acc = self.accelerator
        rank, world = acc.process_index, acc.num_processes
        conditional = fake_y is not None
        was_training = discriminator.training
        discriminator.eval()
        counts = torch.zeros(2, device=acc.device)
        judged = ((self.real_x[rank::world], self.real_y[rank::world], 1.0), (fake, fake_y, -1.0))
        for x, y, sign in judged:
            usable = len(x) - len(x) % self.pack
            if usable:
                y = y[:usable].to(acc.device) if conditional else None
                logits = discriminator(x[:usable].to(acc.device), y).float().flatten()
                right = (sign * logits > 0).sum().float()
                counts += torch.stack([right, torch.tensor(float(len(logits)), device=acc.device)])
        discriminator.train(was_training)
        counts = acc.reduce(counts, "sum")
        return float(counts[0] / counts[1].clamp(min=1))

    def failing(self, signals: dict[str, float]) -> list[str]:
        """The watched signals past their thresholds, in words."""
        c, found = self.config, []
        limits = [("recall", c.min_recall, min), ("coverage", c.min_coverage, min),
                  ("class_entropy", c.min_class_entropy, min),
                  ("different_bins", c.max_different_bins, max),
                  ("d_accuracy", c.max_d_accuracy, max)]  # fmt: skip
        for name, limit, kind in limits:
            value = signals.get(name)
            watched = limit > 0 if kind is min else limit < 1
            if value is None or not watched:
                continue
            if (kind is min and value < limit) or (kind is max and value > limit):
                found.append(f"{name} {value:.3f} {'<' if kind is min else '>'} {limit:g}")
        return found

    def record(self, failing: list[str]) -> bool:
        """Note one check; True when the run should roll back and intervene."""
        self.healthy, self.last_failing = not failing, failing
        self.in_a_row = 0 if self.healthy else self.in_a_row + 1
        return self.in_a_row >= self.config.patience

    def next_intervention(self, applied: int) -> str | None:
        """The intervention after the first `applied`, None when none is left."""
        items = self.config.interventions
        return items[applied] if applied < len(items) else None

    def acted(self, rolled_back: bool) -> None:
        """The loop carried out the decision: count afresh, healthy again if it went back to
        a generator without collapse."""
        self.in_a_row = 0
        self.healthy = self.healthy or rolled_back

    def stats(self) -> dict[str, Any]:
        return {"guard/in_a_row": self.in_a_row}


def start_guard(
    config: Config, protocol: Protocol, accelerator: Accelerator
) -> CollapseGuard | None:
    """The run's guard, None when `collapse_guard.every` is 0."""
    if not config.collapse_guard.every:
        return None
    if not protocol.measures:
        raise UserError(
            "collapse_guard.every: the guard compares samples in a feature space, and this "
            "dataset has no evaluation protocol here (see the message above); set it to 0"
        )
    return CollapseGuard(config, protocol, accelerator)


def interventions_applied(config: Config, accelerator: Accelerator, run_dir: Path) -> list[str]:
    """The interventions in force at the checkpoint a resume starts from."""
    found = agreed_checkpoint(accelerator, run_dir)
    guard = (checkpoint.manifest_of(found).get("guard") or {}) if found else {}
    return config.collapse_guard.interventions[: guard.get("actions", 0)]
