"""Terms added to the generator's loss, each an object built from the config and called
with the GAN (models, data stream) at every generator step."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from pipeline.config import TrainConfig
from pipeline.models.layers import trainable_weight
from pipeline.models.vaegan import kl_to_standard_normal


def orthogonal_penalty(model: nn.Module) -> torch.Tensor:
    """BigGAN's orthogonal regularization: the sum of ||W W^T * (1 - I)||_F^2 over the weights
    of conv and linear layers (filters flattened). Only the off-diagonal part is penalised, so
    each filter's norm stays free."""
    total = torch.zeros((), device=next(model.parameters()).device)
    for module in model.modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            weight = trainable_weight(module).flatten(1)
            gram = weight @ weight.t()
            off_diagonal = gram * (1 - torch.eye(len(gram), device=gram.device))
            total = total + off_diagonal.pow(2).sum()
    return total


@dataclass(frozen=True)
class Orthogonal:
    weight: float

    def __call__(self, gan) -> torch.Tensor:
        return self.weight * orthogonal_penalty(gan.g_bare)


@dataclass(frozen=True)
class VAEReconstruction:
    """VAE-GAN's encoder terms on a real batch: reconstruction error in D's last feature
    maps, the KL of q(z|x) to the prior, and the adversarial loss of the reconstructions.
    (Encoder and decoder share one optimizer, so the adversarial term also reaches the
    encoder, as in single-objective implementations.)"""

    recon_weight: float
    kl_weight: float

    def __call__(self, gan) -> torch.Tensor:
        batch = next(gan.batches)
        real = batch.x.to(gan.accelerator.device)
        y = batch.y.to(real.device) if gan.n_classes else None
        z, mean, log_var = gan.g_bare.encode(real)
        reconstruction = gan.g_bare(z, y)
        with torch.no_grad():
            target = gan.d_bare.features(real).float()
        recon = F.mse_loss(gan.d_bare.features(reconstruction).float(), target)
        adversarial = gan.loss.g_loss(gan.d_bare(reconstruction, y).float())
        kl = kl_to_standard_normal(mean.float(), log_var.float())
        return self.recon_weight * recon + self.kl_weight * kl + adversarial


def generator_terms(train: TrainConfig, generator: nn.Module) -> list:
    terms: list = [Orthogonal(train.ortho_reg)] if train.ortho_reg > 0 else []
    if hasattr(generator, "encode"):
        terms.append(VAEReconstruction(train.recon_weight, train.kl_weight))
    return terms
