"""The anti-collapse options of a run, built once from the config as objects that the
training steps call: a loss, augmentation of what D sees, D penalties and G terms."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from accelerate import Accelerator
from torch import nn

from pipeline.config import Config
from pipeline.data.description import Dataset
from pipeline.errors import UserError
from pipeline.models.registry import FAMILIES
from pipeline.train.d_augment import AdaptiveAugment, DiffAugment
from pipeline.train.losses import AdversarialLoss, adversarial_loss
from pipeline.train.penalties import R1, GradientPenalty, LeCam
from pipeline.train.regularizers import ModeSeeking, Orthogonal, PathLength, VAEReconstruction


@dataclass
class Toolbox:
    loss: AdversarialLoss
    augment: nn.Module  # images -> images, applied to everything D sees
    d_terms: list = field(default_factory=list)  # Judged -> penalty or None
    g_terms: list = field(default_factory=list)  # (GAN, step) -> extra generator loss or None
    # Parts with running state (ADA's p, LeCam's averages): checkpointed with the models.
    stateful: nn.ModuleDict = field(default_factory=nn.ModuleDict)

    def stats(self) -> dict[str, Any]:
        return self.augment.stats()


def build_toolbox(config: Config, dataset: Dataset, accelerator: Accelerator) -> Toolbox:
    reg, aug, train = config.regularize, config.d_augment, config.train
    box = Toolbox(adversarial_loss(train.loss, train.relativistic), DiffAugment([]))
    if aug.diffaugment or aug.ada_target:
        if not dataset.images:
            raise UserError(
                "d_augment: DiffAugment and ADA augment images, but this dataset holds "
                f"{dataset.kind}; remove the d_augment section"
            )
        if aug.ada_target:
            box.augment = AdaptiveAugment(aug.ada_target, aug.ada_interval, aug.ada_images)
            box.augment.reduce = lambda t: accelerator.reduce(t, "sum")
            box.stateful["augment"] = box.augment
        else:
            box.augment = DiffAugment(aug.diffaugment)
    if reg.r1:
        box.d_terms.append(R1(reg.r1, reg.r1_every))
    if reg.gradient_penalty:
        box.d_terms.append(GradientPenalty(reg.gradient_penalty))
    if reg.lecam:
        lecam = LeCam(reg.lecam, reg.lecam_decay)
        lecam.reduce = lambda t: accelerator.reduce(t, "mean")
        box.d_terms.append(lecam)
        box.stateful["lecam"] = lecam
    if reg.orthogonal:
        box.g_terms.append(Orthogonal(reg.orthogonal))
    if reg.mode_seeking:
        box.g_terms.append(ModeSeeking(reg.mode_seeking, max(2, train.batch_size // 2)))
    if reg.path_length:
        if not FAMILIES[config.model.family].style_based:
            raise UserError(
                "regularize.path_length: path-length regularization needs a style-based "
                f"generator (model.family stylegan2), not {config.model.family}; set it to 0"
            )
        batch = max(1, train.batch_size // 2)  # half a batch, as the paper's runs do
        path_length = PathLength(reg.path_length, reg.path_length_every, batch)
        path_length.reduce = lambda t: accelerator.reduce(t, "mean")
        box.g_terms.append(path_length)
        box.stateful["path_length"] = path_length
    if FAMILIES[config.model.family].encoder:  # VAE-GAN: the encoder's terms
        box.g_terms.append(VAEReconstruction(train.recon_weight, train.kl_weight))
    box.stateful.to(accelerator.device)
    return box
