"""Map `model.family` to a (generator, discriminator) pair shaped for the dataset.

Each family is one row of `FAMILIES`: the data it trains on, the builder, and the model
options of its own. An option that belongs to other families, set away from its default, is an
error: `model.attention=16` on a DCGAN would otherwise train without attention and without a word.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields
from functools import partial

import torch
from torch import nn

from pipeline.config import ModelConfig
from pipeline.data.description import Dataset
from pipeline.errors import UserError
from pipeline.models import biggan, dcgan, mlp, progan, stylegan2, vaegan
from pipeline.models.layers import HeadOptions, Packed, trainable_weight


@dataclass(frozen=True)
class Shapes:
    """What a builder needs beside the options; D sees `d_sample`, a pack of samples at once."""

    sample: list[int]
    d_sample: list[int]
    classes: int
    head: HeadOptions


Builder = Callable[[ModelConfig, Shapes], tuple[nn.Module, nn.Module]]


@dataclass(frozen=True)
class Family:
    data: str  # "image" or "points": the dataset kind it trains on
    build: Builder
    own_options: frozenset[str] = frozenset()  # ModelConfig keys beyond the shared ones
    progressive: bool = False  # G and D grow: `set_stage(level, alpha)`, `levels`
    encoder: bool = False  # G encodes too (`encode`), with its own loss terms
    style_based: bool = False  # G maps z to per-layer ws: `ws(z, y)`, `synthesis(ws, noise)`


def _dcgan(model: ModelConfig, s: Shapes, generator=dcgan.Generator) -> tuple[nn.Module, nn.Module]:
    g = generator(
        s.sample, z_dim=model.z_dim, width=model.width, n_classes=s.classes,
        spectral=model.spectral_norm_g,
    )  # fmt: skip
    d = dcgan.Discriminator(
        s.d_sample, width=model.d_width, n_classes=s.classes, spectral=model.spectral_norm_d,
        head=s.head,
    )  # fmt: skip
    return g, d


def _biggan(model: ModelConfig, s: Shapes) -> tuple[nn.Module, nn.Module]:
    g = biggan.Generator(
        s.sample, z_dim=model.z_dim, ch=model.width, n_classes=s.classes,
        spectral=model.spectral_norm_g, attention=model.attention, shared_dim=model.shared_dim,
        hierarchical=model.hierarchical,
    )  # fmt: skip
    d = biggan.Discriminator(
        s.d_sample, ch=model.d_width, n_classes=s.classes, spectral=model.spectral_norm_d,
        attention=model.attention, head=s.head,
    )  # fmt: skip
    return g, d


def _progan(model: ModelConfig, s: Shapes) -> tuple[nn.Module, nn.Module]:
    """No spectral norm: equalized learning rate plays its part."""
    g = progan.Generator(s.sample, z_dim=model.z_dim, width=model.width, n_classes=s.classes)
    d = progan.Discriminator(s.d_sample, width=model.d_width, n_classes=s.classes, head=s.head)
    return g, d


def _stylegan2(model: ModelConfig, s: Shapes) -> tuple[nn.Module, nn.Module]:
    """Equalized learning rate: the weights are N(0, 1) scaled at run time, so no other
    initialisation; minibatch-stddev is the shared option (0 leaves it out)."""
    if model.init != "default" or model.d_dropout:
        raise ValueError("stylegan2 takes neither model.init nor model.d_dropout")
    clamp = model.conv_clamp or None
    g = stylegan2.Generator(
        s.sample, z_dim=model.z_dim, n_classes=s.classes, w_dim=model.z_dim,
        mapping_layers=model.mapping_layers, channel_base=model.channel_base,
        channel_max=model.width, conv_clamp=clamp, style_mixing=model.style_mixing,
        bf16_resolutions=model.bf16_resolutions,
    )  # fmt: skip
    d = stylegan2.Discriminator(
        s.d_sample, n_classes=s.classes, architecture=model.d_architecture,
        channel_base=model.channel_base, channel_max=model.d_width,
        mbstd_group=model.minibatch_stddev, conv_clamp=clamp,
        bf16_resolutions=model.bf16_resolutions,
    )  # fmt: skip
    return g, d


def _mlp(model: ModelConfig, s: Shapes) -> tuple[nn.Module, nn.Module]:
    g = mlp.Generator(
        s.sample, z_dim=model.z_dim, width=model.width, depth=model.depth, n_classes=s.classes,
        spectral=model.spectral_norm_g,
    )  # fmt: skip
    d = mlp.Discriminator(
        s.d_sample, width=model.d_width, depth=model.d_depth, n_classes=s.classes,
        spectral=model.spectral_norm_d, head=s.head,
    )  # fmt: skip
    return g, d


SPECTRAL = frozenset({"spectral_norm_g", "spectral_norm_d"})
STYLE_OPTIONS = frozenset(
    {
        "channel_base",
        "mapping_layers",
        "style_mixing",
        "d_architecture",
        "conv_clamp",
        "bf16_resolutions",
    }
)
FAMILIES = {
    "dcgan": Family("image", _dcgan, SPECTRAL),
    "mlp": Family("points", _mlp, SPECTRAL | {"depth", "d_depth"}),
    "biggan": Family("image", _biggan, SPECTRAL | {"attention", "shared_dim", "hierarchical"}),
    "progan": Family("image", _progan, progressive=True),
    # VAE-GAN: DCGAN's pair with an encoder in front of G
    "vaegan": Family("image", partial(_dcgan, generator=vaegan.Generator), SPECTRAL, encoder=True),
    "stylegan2": Family("image", _stylegan2, STYLE_OPTIONS, style_based=True),
}
# Options every family takes; the rest belong to the families that list them.
SHARED_OPTIONS = frozenset(
    {"family", "z_dim", "width", "d_width", "conditional", "init"}
    | {"minibatch_stddev", "pack", "d_dropout"}
)


def build_models(model: ModelConfig, dataset: Dataset) -> tuple[nn.Module, nn.Module]:
    """A pair shaped for the dataset's samples and, when conditional, its classes."""
    family = FAMILIES[model.family]
    check_options(model)
    if family.data != dataset.kind:
        raise UserError(
            f"model.family: {model.family} trains on {family.data} data but the "
            f"dataset holds {dataset.kind}; pick "
            + " or ".join(name for name, f in FAMILIES.items() if f.data == dataset.kind)
        )
    shape, classes = dataset.shape, dataset.classes if model.conditional else 0
    if model.conditional and classes < 1:
        raise UserError("model.conditional: the dataset has no class labels; set it to false")
    d_shape = [shape[0] * model.pack, *shape[1:]]  # a pack of m samples: m times the channels
    shapes = Shapes(shape, d_shape, classes, HeadOptions(model.minibatch_stddev, model.d_dropout))
    try:
        g, d = family.build(model, shapes)
    except ValueError as err:
        raise UserError(
            f"model: {err}; change the model settings or rebuild the data with another --resolution"
        ) from None
    for network in (g, d):
        initialize(network, model.init)
    return g, (Packed(d, model.pack) if model.pack > 1 else d)


def check_options(model: ModelConfig) -> None:
    """One error for the first option `model.family` does not take, set away from its default."""
    own = FAMILIES[model.family].own_options
    for option in fields(ModelConfig):
        name = option.name
        if name not in SHARED_OPTIONS | own and getattr(model, name) != option.default:
            takers = [f for f, family in FAMILIES.items() if name in family.own_options]
            raise UserError(
                f"model.{name}: {model.family} does not take it (an option of "
                f"{', '.join(takers)}); remove it or set model.family to one of those"
            )


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
