"""The progressive-growing schedule: which resolution (level) the networks train at, and how
far the newest one has faded in (alpha), as a function of the images shown so far.

Being a function of `images_seen` alone, the stage is restored exactly on resume: a checkpoint
taken mid-phase continues in the same phase at the same alpha.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from pipeline.config import ModelConfig
from pipeline.models.registry import FAMILIES


@dataclass(frozen=True)
class Growth:
    levels: int  # 4x4 is level 0; the target resolution is level `levels - 1`
    phase_images: int  # images for each fade-in and for each stable phase

    def stage(self, images_seen: int) -> tuple[int, float]:
        """Level 0 trains stable for one phase; every later level fades in over one phase,
        then trains stable for one phase."""
        phase = images_seen // self.phase_images
        if phase == 0:
            return 0, 1.0
        level = min((phase + 1) // 2, self.levels - 1)
        fading = phase % 2 == 1 and (phase + 1) // 2 <= self.levels - 1
        if not fading:
            return level, 1.0
        return level, (images_seen - phase * self.phase_images) / self.phase_images

    def apply(self, images_seen: int, *models: nn.Module) -> tuple[int, float]:
        level, alpha = self.stage(images_seen)
        for model in models:
            model.set_stage(level, alpha)
        return level, alpha


def growth_for(model: ModelConfig, generator: nn.Module, phase_images: int) -> Growth | None:
    """A schedule for a progressive family's networks, none for the others."""
    if not FAMILIES[model.family].progressive:
        return None
    return Growth(generator.levels, phase_images)
