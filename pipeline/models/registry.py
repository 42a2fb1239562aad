"""Map `model.family` to a (generator, discriminator) pair shaped for the dataset."""

from __future__ import annotations

from typing import Any

from torch import nn

from pipeline.config import ModelConfig
from pipeline.errors import UserError
from pipeline.models import dcgan, mlp

FAMILIES = {"dcgan": "image", "mlp": "points"}


def build_models(model: ModelConfig, index: dict[str, Any]) -> tuple[nn.Module, nn.Module]:
    """`index` is the dataset's index.json: it gives the sample shape and the class count."""
    if FAMILIES[model.family] != index["kind"]:
        raise UserError(
            f"model.family: {model.family} trains on {FAMILIES[model.family]} data but the "
            f"dataset holds {index['kind']}; pick "
            + " or ".join(f for f, kind in FAMILIES.items() if kind == index["kind"])
        )
    shape, classes = index["shape"], index["classes"] if model.conditional else 0
    if model.family == "dcgan":
        try:
            g = dcgan.Generator(shape, model.z_dim, model.width, classes, model.spectral_norm_g)
            d = dcgan.Discriminator(shape, model.d_width, classes, model.spectral_norm_d)
        except ValueError as err:
            raise UserError(f"model.family: {err}; rebuild the data with --resolution") from None
        return g, d
    g = mlp.Generator(shape, model.z_dim, model.width, model.depth, classes, model.spectral_norm_g)
    d = mlp.Discriminator(shape, model.d_width, model.d_depth, classes, model.spectral_norm_d)
    return g, d
