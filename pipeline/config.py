"""The experiment schema: dataclasses, YAML files, dotted overrides, one-line errors.

A config file is a nested mapping that mirrors `Config`. Command-line overrides such as
`train.lr_d=4e-4` are applied on top. Every value is checked against the schema: an unknown
key, a wrong type or a value out of range raises `UserError` naming the key path and what is
accepted, so a typo never trains the wrong experiment silently.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from pipeline.errors import UserError


def choice(default: str, *options: str) -> Any:
    """A string field restricted to `options`."""
    return field(default=default, metadata={"choices": (default, *options)})


def bounded(default: float, low: float | None = None, high: float | None = None) -> Any:
    """A numeric field with inclusive bounds."""
    return field(default=default, metadata={"low": low, "high": high})


@dataclass
class AugmentConfig:
    """Augmentation of real training images (more diversity from few images)."""

    flip: bool = False  # horizontal flip with probability 1/2
    crop_scale: float = bounded(1.0, 0.05, 1.0)  # random resized crop of >= this area; 1 = off
    rotate: float = bounded(0.0, 0.0, 180.0)  # random rotation within +-degrees; 0 = off


@dataclass
class DataConfig:
    dir: str = "data/digits"  # shard directory written by `ganpipe data build`
    shuffle_buffer: int = bounded(1000, 0)  # samples permuted together; 0 = shard order
    workers: int = bounded(0, 0)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    # What the experiment expects of the dataset (checked against index.json; lets
    # `ganpipe model-info` size the models before the data exists). Empty / -1: take the data's.
    shape: list[int] = field(default_factory=list)
    classes: int = bounded(-1, -1)


@dataclass
class ModelConfig:
    family: str = choice("dcgan", "mlp", "biggan", "progan", "vaegan", "stylegan2")
    z_dim: int = bounded(64, 1)
    width: int = bounded(32, 1)  # G; dcgan: channels at full resolution; mlp: hidden units
    d_width: int = bounded(32, 1)  # the same for D
    depth: int = bounded(4, 1)  # mlp only: hidden layers of G
    d_depth: int = bounded(3, 1)  # mlp only: hidden layers of D
    conditional: bool = False  # class-conditional G and projection D
    spectral_norm_g: bool = False
    spectral_norm_d: bool = True
    attention: int = bounded(0, 0)  # biggan: resolution of the self-attention block; 0 = none
    shared_dim: int = bounded(128, 0)  # biggan: shared class embedding; 0 = one-hot classes
    hierarchical: bool = True  # biggan: split z across the generator's blocks
    # stylegan2 (z_dim is also w's width; width and d_width cap the channels):
    channel_base: int = bounded(32768, 1)  # channels at resolution r: base / r, up to width
    mapping_layers: int = bounded(8, 1)
    style_mixing: float = bounded(0.9, 0.0, 1.0)  # share of training batches with two ws
    d_architecture: str = choice("resnet", "orig")  # D blocks with or without a shortcut
    conv_clamp: float = bounded(0.0, 0.0)  # clamp activations to +-this (bf16); 0 = off
    bf16_resolutions: int = bounded(4, 0)  # under bf16: so many top resolutions in it, rest fp32
    init: str = choice("default", "normal", "orthogonal", "xavier")  # conv/linear weights
    # Discriminator options against collapse (every family):
    minibatch_stddev: int = bounded(0, 0)  # group size of a minibatch-stddev feature; 0 = off
    pack: int = bounded(1, 1)  # PacGAN: D judges this many samples at once; 1 = off
    d_dropout: float = bounded(0.0, 0.0, 0.9)  # dropout on D's pooled features


@dataclass
class TrainConfig:
    steps: int = bounded(2000, 1)  # generator steps in total
    batch_size: int = bounded(64, 1)  # per process and per micro-batch
    grad_accum: int = bounded(1, 1)  # micro-batches per optimizer step
    n_dis: int = bounded(1, 1)  # discriminator steps per generator step
    loss: str = choice("hinge", "nonsat", "wgan", "lsgan")
    relativistic: bool = False  # relativistic average version of `loss`
    lr_g: float = bounded(1e-4, 0.0)
    lr_d: float = bounded(4e-4, 0.0)
    betas_g: list[float] = field(default_factory=lambda: [0.0, 0.999])
    betas_d: list[float] = field(default_factory=lambda: [0.0, 0.999])
    adam_eps: float = bounded(1e-8, 0.0)  # larger (1e-6 to 1e-4) damps near-zero gradients
    lr_decay_from: float = bounded(1.0, 0.0, 1.0)  # share of steps after which lrs fall to 1%
    phase_images: int = bounded(600_000, 1)  # progan: images per fade-in and per stable phase
    recon_weight: float = bounded(1.0, 0.0)  # vaegan: reconstruction in D's feature space
    kl_weight: float = bounded(1.0, 0.0)  # vaegan: KL of the encoder to the prior
    ema_decay: float = bounded(0.999, 0.0, 1.0)
    ema_start: int = bounded(0, 0)  # steps during which the EMA copies G instead of averaging
    ema_half_life: int = bounded(0, 0)  # images; > 0: StyleGAN2's EMA instead of ema_decay
    ema_rampup: float = bounded(0.0, 0.0)  # cap the half-life at this x images seen; 0 = off
    mixed_precision: str = choice("no", "bf16")
    sync_bn: bool = False  # batch-norm statistics over all processes' batches (cross-replica)
    deterministic: bool = False  # deterministic kernels: a resumed run matches bit for bit
    compile: bool = False  # torch.compile the trained forward passes (eager where it cannot)
    # torch.compile's mode: reduce-overhead replays CUDA graphs (fewer launches, for models
    # too small to keep a GPU busy); max-autotune also searches kernels (long to compile)
    compile_mode: str = choice("default", "reduce-overhead", "max-autotune")
    channels_last: bool = True  # image models and batches in NHWC order (faster convolutions)
    log_every: int = bounded(50, 1)
    eval_every: int = bounded(500, 1)
    sample_every: int = bounded(500, 1)
    checkpoint_every: int = bounded(500, 1)
    keep_checkpoints: int = bounded(2, 1)
    # Minutes of this process's CPU time per torch thread (other load on the machine does not
    # move them): a checkpoint as each is passed, kept, and the run ends at the last (or at
    # `steps`). For time-budget benchmarks (`ganpipe bench quality`); [] = none.
    budget_minutes: list[float] = field(default_factory=list)


@dataclass
class RegularizeConfig:
    """Penalties added to the losses; each weight 0 = off."""

    r1: float = bounded(0.0, 0.0)  # gamma of R1 on real data (D)
    r1_every: int = bounded(1, 1)  # lazy R1: every k-th D step, scaled by k
    gradient_penalty: float = bounded(0.0, 0.0)  # WGAN-GP weight (D; the paper: 10)
    lecam: float = bounded(0.0, 0.0)  # LeCam weight (D)
    lecam_decay: float = bounded(0.99, 0.0, 1.0)  # moving average of D's outputs
    orthogonal: float = bounded(0.0, 0.0)  # orthogonal regularization of G (BigGAN: 1e-4)
    mode_seeking: float = bounded(0.0, 0.0)  # mode-seeking (diversity) term of G
    path_length: float = bounded(0.0, 0.0)  # stylegan2's path-length term of G (paper: 2)
    path_length_every: int = bounded(4, 1)  # lazy: every k-th G step, scaled by k


@dataclass
class DAugmentConfig:
    """Differentiable augmentation of everything D sees, real and fake (DiffAugment or ADA)."""

    diffaugment: list[str] = field(default_factory=list)  # of color, translation, cutout
    ada_target: float = bounded(0.0, 0.0, 1.0)  # ADA on, with this target for E[sign D(real)]
    ada_interval: int = bounded(4, 1)  # D steps between adjustments of p
    ada_images: int = bounded(500_000, 1)  # images for p to travel from 0 to 1


@dataclass
class EvalConfig:
    n_samples: int = bounded(10000, 1)  # the final evaluation (`ganpipe eval`, end of training)
    n_samples_during_training: int = bounded(2000, 1)
    batch_size: int = bounded(500, 1)
    grid_size: int = bounded(100, 1)  # images in each sample grid
    truncation: float = bounded(0.0, 0.0)  # resample |z| above this when sampling; 0 = off
    # Feature space of FID/KID/IS/PRDC: auto = the digit classifier for digit datasets,
    # InceptionV3 for other images (pipeline/metrics/inception.py: the `inception` extra).
    extractor: str = choice("auto", "digits", "inception")
    inception_weights: str = ""  # torch-fidelity weights file; "" = the bundled network


@dataclass
class RejectionConfig:
    """Discriminator rejection sampling in `ganpipe sample` and `ganpipe eval` (see
    pipeline/rejection.py); evaluations during training measure the generator alone."""

    temperature: float = bounded(0.0, 0.0)  # 0 = off; 1 = aim at the data; lower = sharper
    critic_steps: int = bounded(2000, 1)  # fine-tuning of D against the frozen EMA generator
    critic_batch: int = bounded(1024, 1)
    critic_lr: float = bounded(1e-3, 0.0)  # Adam, falling linearly to 0


@dataclass
class NonFiniteConfig:
    """A NaN or infinite loss or gradient: the update is skipped and counted; after
    `restore_after` skipped iterations in a row, the newest checkpoint is restored and both
    learning rates multiplied by `lr_factor`; after `max_restores` restores the run stops."""

    restore_after: int = bounded(10, 1)
    lr_factor: float = bounded(0.5, 0.0, 1.0)
    max_restores: int = bounded(3, 0)


@dataclass
class CollapseGuardConfig:
    """Online collapse monitors (BENCHMARKS.md section 5), checked every `every` steps on
    `samples` generated points or images against a fixed set of `real_samples` real ones.
    A check fails when any watched signal crosses its threshold (0 for a minimum, 1 for a
    maximum: not watched). After `patience` failed checks in a row the run alerts, rolls back
    to the newest checkpoint saved while healthy and applies the next of `interventions`
    (config overrides such as regularize.r1=1.0, train.lr_d=1e-4, d_augment.ada_target=0.6,
    or several at once joined by `;`); once they are used up it only alerts."""

    every: int = bounded(0, 0)  # steps between checks; 0 = off
    start: int = bounded(0, 0)  # no checks before this step (a young generator is collapsed)
    samples: int = bounded(1000, 10)
    real_samples: int = bounded(2000, 10)  # from every training shard alike
    patience: int = bounded(2, 1)
    min_recall: float = bounded(0.0, 0.0, 1.0)  # k = 3, of the real set by generated samples
    min_coverage: float = bounded(0.0, 0.0, 1.0)  # k = 5
    max_different_bins: float = bounded(1.0, 0.0, 1.0)  # share of 100 k-means cells, z-test
    min_class_entropy: float = bounded(0.0, 0.0, 1.0)  # predicted classes, over log(classes)
    max_d_accuracy: float = bounded(1.0, 0.0, 1.0)  # D's accuracy on real vs generated
    interventions: list[str] = field(default_factory=list)


# What an intervention may change: the toolbox, the optimizers and the average of G, not the
# models' shapes or the data stream.
INTERVENTION_KEYS = ("regularize.", "d_augment.", "train.lr_g", "train.lr_d", "train.n_dis",
                     "train.loss", "train.relativistic", "train.lr_decay_from",
                     "train.ema_decay")  # fmt: skip


def intervention_overrides(items: list[str]) -> list[str]:
    """The `key=value` overrides of interventions, each one override or several joined by
    `;` (a recipe applied at once: `regularize.lecam=0.3; train.ema_decay=0.999`)."""
    return [part.strip() for item in items for part in item.split(";") if part.strip()]


@dataclass
class TrackingConfig:
    wandb: bool = True
    project: str = "gan-pipeline"
    group: str = ""  # W&B run group, e.g. the experiment family
    # Seconds the W&B server has to answer before the run logs offline (for `wandb sync`).
    wandb_timeout: float = bounded(15.0, 0.1)


@dataclass
class ProfileConfig:
    """torch's profiler over `steps` training steps after step `start` (past warm-up, cuDNN
    autotuning and compiling): profile/ in the run directory gets each process's trace (for
    Perfetto or chrome://tracing) and its time per step by kind of work."""

    steps: int = bounded(0, 0)  # 0 = off
    start: int = bounded(10, 0)


@dataclass
class Config:
    name: str = "run"
    seed: int = 0
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    regularize: RegularizeConfig = field(default_factory=RegularizeConfig)
    d_augment: DAugmentConfig = field(default_factory=DAugmentConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    rejection: RejectionConfig = field(default_factory=RejectionConfig)
    nonfinite: NonFiniteConfig = field(default_factory=NonFiniteConfig)
    collapse_guard: CollapseGuardConfig = field(default_factory=CollapseGuardConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    profile: ProfileConfig = field(default_factory=ProfileConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def load_config(path: str | Path | None, overrides: list[str] = ()) -> Config:
    """Read a YAML file (or start from defaults), apply `key.path=value` overrides, validate."""
    raw: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise UserError(f"config file {path} does not exist; see configs/ for examples")
        try:
            raw = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as err:
            raise UserError(f"{path}: not valid YAML ({err})") from None
        if not isinstance(raw, dict):
            raise UserError(f"{path}: expected a mapping of config sections at the top level")
    for item in overrides:
        _apply_override(raw, item)
    config = build(Config, raw, "")
    _check_cross_fields(config)
    return config


def with_overrides(config: Config, overrides: list[str]) -> Config:
    """A new config: `config` with `key.path=value` overrides applied and validated."""
    raw = config.to_dict()
    for item in overrides:
        _apply_override(raw, item)
    changed = build(Config, raw, "")
    _check_cross_fields(changed)
    return changed


def _check_interventions(config: Config) -> None:
    """Every intervention is checked now, applied in order, not when a collapse comes."""
    overrides = intervention_overrides(config.collapse_guard.interventions)
    for item in overrides:
        key = item.partition("=")[0]
        if not key.startswith(INTERVENTION_KEYS) or "=" not in item:
            raise UserError(
                f"collapse_guard.interventions: {item!r} must be key=value with a key under "
                f"{', '.join(INTERVENTION_KEYS)} (the models and data cannot change mid-run); "
                "join several with ';'"
            )
    if overrides:
        raw = config.to_dict()
        raw["collapse_guard"]["interventions"] = []
        try:
            with_overrides(build(Config, raw, ""), overrides)
        except UserError as err:
            raise UserError(f"collapse_guard.interventions: {err}") from None


def _check_cross_fields(config: Config) -> None:
    _check_interventions(config)
    for name in ("betas_g", "betas_d"):
        betas = getattr(config.train, name)
        if len(betas) != 2 or not all(0.0 <= b < 1.0 for b in betas):
            raise UserError(f"train.{name}: {betas!r}, accepted: two numbers in [0, 1)")
    if any(minutes <= 0 for minutes in config.train.budget_minutes):
        raise UserError(
            f"train.budget_minutes: {config.train.budget_minutes!r}, accepted: minutes > 0"
        )
    model, augment = config.model, config.d_augment
    if config.train.batch_size % model.pack:
        raise UserError(
            f"model.pack: {model.pack} does not divide train.batch_size "
            f"{config.train.batch_size}; pick a batch size that is a multiple of it"
        )
    if config.rejection.temperature and model.pack > 1:
        raise UserError(
            f"rejection.temperature: rejection sampling scores one sample at a time, but "
            f"model.pack {model.pack} makes D judge packs; set rejection.temperature to 0"
        )
    packs = config.train.batch_size // model.pack
    group = model.minibatch_stddev or (4 if model.family == "progan" else 0)  # progan's own
    if group and packs % group:
        raise UserError(
            f"model.minibatch_stddev: groups of {group} do not divide the "
            f"{packs} samples D judges per batch (train.batch_size / model.pack); the groups "
            "would mix real and generated samples"
        )
    if augment.diffaugment and augment.ada_target:
        raise UserError(
            "d_augment: choose DiffAugment (d_augment.diffaugment) or ADA "
            "(d_augment.ada_target), not both"
        )
    unknown = sorted(set(augment.diffaugment) - {"color", "translation", "cutout"})
    if unknown:
        raise UserError(
            f"d_augment.diffaugment: unknown {', '.join(unknown)}; "
            "accepted: color, translation, cutout"
        )


def save_config(config: Config, path: Path) -> None:
    path.write_text(yaml.safe_dump(config.to_dict(), sort_keys=False))


def _apply_override(raw: dict[str, Any], item: str) -> None:
    key, sep, text = item.partition("=")
    if not sep or not key:
        raise UserError(f"override {item!r}: expected key.path=value, e.g. train.lr_d=4e-4")
    *parents, leaf = key.split(".")
    node = raw
    for part in parents:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise UserError(f"override {item!r}: {part} is a value, not a section")
    node[leaf] = yaml.safe_load(text) if text else ""


def build(cls: type, raw: Any, prefix: str) -> Any:
    """Turn a mapping into the dataclass `cls`, checking every key and value."""
    where = prefix.rstrip(".") or "the top level"
    if not isinstance(raw, dict):
        raise UserError(f"{where}: expected a section (mapping), got {raw!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    for key in raw:
        if key not in fields:
            close = difflib.get_close_matches(str(key), fields, n=1)
            hint = f"did you mean {prefix}{close[0]}? " if close else ""
            raise UserError(
                f"unknown config key {prefix}{key}: {hint}accepted: {', '.join(fields)}"
            )
    values = {}
    for name, f in fields.items():
        if name in raw:
            values[name] = _check(hints[name], raw[name], f"{prefix}{name}", f.metadata)
    return cls(**values)


def _check(hint: Any, value: Any, path: str, meta: Any) -> Any:
    if dataclasses.is_dataclass(hint):
        return build(hint, value, f"{path}.")
    origin = typing.get_origin(hint)
    if origin in (list, tuple):
        (item_type,) = typing.get_args(hint)[:1]
        if not isinstance(value, (list, tuple)):
            raise UserError(f"{path}: expected a list of {item_type.__name__}, got {value!r}")
        return [_check(item_type, v, f"{path}[{i}]", {}) for i, v in enumerate(value)]
    if origin in (typing.Union, types.UnionType):
        raise TypeError(f"{path}: union types are not supported in the schema")
    if hint is str and isinstance(value, bool) and "no" in meta.get("choices", ()):
        value = "no" if value is False else value  # YAML 1.1 reads a bare `no` as false
    value = _coerce(hint, value, path)
    if "choices" in meta and value not in meta["choices"]:
        raise UserError(f"{path}: {value!r} is not one of {', '.join(meta['choices'])}")
    low, high = meta.get("low"), meta.get("high")
    if low is not None and value < low or high is not None and value > high:
        accepted = f">= {low}" if high is None else f"in [{low}, {high}]"
        raise UserError(f"{path}: {value!r} is out of range, accepted: {accepted}")
    return value


def _coerce(hint: type, value: Any, path: str) -> Any:
    """Accept what YAML naturally produces for each type (YAML 1.1 reads `4e-4` as a string)."""
    if hint is bool:
        if isinstance(value, bool):
            return value
    elif hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif hint is float:
        number = None
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            number = float(value)
        elif isinstance(value, str):
            try:
                number = float(value)
            except ValueError:
                pass
        if number is not None and math.isfinite(number):
            return number
    elif hint is str:
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            return str(value)
    expected = "a finite float" if hint is float else hint.__name__
    raise UserError(f"{path}: expected {expected}, got {value!r}")
