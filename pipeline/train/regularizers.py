"""Penalties added to the generator's loss, each an object built from the config."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from pipeline.config import TrainConfig
from pipeline.models.layers import trainable_weight


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

    def __call__(self, generator: nn.Module) -> torch.Tensor:
        return self.weight * orthogonal_penalty(generator)


def generator_regularizers(train: TrainConfig) -> list:
    return [Orthogonal(train.ortho_reg)] if train.ortho_reg > 0 else []
