"""Map `model.family` to a (generator, discriminator) pair shaped for the dataset."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from pipeline.config import ModelConfig
from pipeline.errors import UserError
from pipeline.models import biggan, dcgan, mlp, progan, vaegan
from pipeline.models.layers import HeadOptions, Packed, trainable_weight

FAMILIES = {
    "dcgan": "image",
    "mlp": "points",
    "biggan": "image",
    "progan": "image",
    "vaegan": "image",
}


def build_models(model: ModelConfig, index: dict[str, Any]) -> tuple[nn.Module, nn.Module]:
    """`index` is the dataset's index.json: it gives the sample shape and the class count."""
    if FAMILIES[model.family] != index["kind"]:
        raise UserError(
            f"model.family: {model.family} trains on {FAMILIES[model.family]} data but the "
            f"dataset holds {index['kind']}; pick "
            + " or ".join(f for f, kind in FAMILIES.items() if kind == index["kind"])
        )
    shape, classes = index["shape"], index["classes"] if model.conditional else 0
    if model.conditional and classes < 1:
        raise UserError("model.conditional: the dataset has no class labels; set it to false")
    g, d = _build(model, shape, classes)
    for network in (g, d):
        initialize(network, model.init)
    return g, (Packed(d, model.pack) if model.pack > 1 else d)


INITIALIZERS = {
    "normal": lambda w: nn.init.normal_(w, 0.0, 0.02),  # DCGAN and BigGAN's CIFAR runs
    "orthogonal": nn.init.orthogonal_,  # BigGAN at ImageNet scale
    "xavier": nn.init.xavier_uniform_,
}


def initialize(network: nn.Module, scheme: str) -> None:
    """Re-initialise conv, linear and embedding weights ("default" keeps PyTorch's own).
    Embeddings too: a class embedding left at N(0, 1) would start every class far apart."""
    if scheme == "default":
        return
    for module in network.modules():
        if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear, nn.Embedding)):
            with torch.no_grad():
                INITIALIZERS[scheme](trainable_weight(module))


def _build(model: ModelConfig, shape: list[int], classes: int) -> tuple[nn.Module, nn.Module]:
    head = HeadOptions(model.minibatch_stddev, model.d_dropout)
    d_shape = [shape[0] * model.pack, *shape[1:]]  # a pack of m samples: m times the channels
    sn_g, sn_d = model.spectral_norm_g, model.spectral_norm_d
    try:
        if model.family == "dcgan":
            g = dcgan.Generator(shape, model.z_dim, model.width, classes, sn_g)
            return g, dcgan.Discriminator(d_shape, model.d_width, classes, sn_d, head)
        if model.family == "biggan":
            return _biggan(model, shape, d_shape, classes, head)
        if model.family == "vaegan":  # DCGAN's D; G with an encoder in front
            g = vaegan.Generator(shape, model.z_dim, model.width, classes, sn_g)
            return g, dcgan.Discriminator(d_shape, model.d_width, classes, sn_d, head)
        if model.family == "progan":
            g = progan.Generator(shape, model.z_dim, model.width, classes)
            return g, progan.Discriminator(d_shape, model.d_width, classes, head)
    except ValueError as err:
        raise UserError(
            f"model: {err}; change the model settings or rebuild the data with another --resolution"
        ) from None
    g = mlp.Generator(shape, model.z_dim, model.width, model.depth, classes, sn_g)
    d = mlp.Discriminator(d_shape, model.d_width, model.d_depth, classes, sn_d, head)
    return g, d


def _biggan(
    model: ModelConfig, shape: list[int], d_shape: list[int], classes: int, head: HeadOptions
) -> tuple[nn.Module, nn.Module]:
    g = biggan.Generator(
        shape,
        model.z_dim,
        model.width,
        classes,
        model.spectral_norm_g,
        model.attention,
        model.shared_dim,
        model.hierarchical,
    )
    d = biggan.Discriminator(
        d_shape, model.d_width, classes, model.spectral_norm_d, model.attention, head
    )
    return g, d
