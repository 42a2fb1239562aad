"""How G and D meet the processes. Data parallelism (or a single process): one Accelerator
prepares both models. DeepSpeed ZeRO, when `accelerate launch` runs a DeepSpeed config: an
engine holds one model, so G and D get an Accelerator and a DeepSpeed plugin each."""

from __future__ import annotations

import torch
from accelerate import Accelerator
from accelerate.utils import (
    DeepSpeedPlugin,
    DistributedDataParallelKwargs,
    DistributedType,
    InitProcessGroupKwargs,
    parse_flag_from_env,
)
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from pipeline.config import Config


class ModelPlugin(DeepSpeedPlugin):
    """A DeepSpeed plugin for one of two models. Selecting a plugin registers its config with
    transformers (for Hugging Face models' ZeRO-3 init): not needed for these models, and
    transformers is not a dependency."""

    def set_deepspeed_weakref(self) -> None:
        pass


def uses_deepspeed() -> bool:
    """Whether `accelerate launch` runs a DeepSpeed config."""
    return parse_flag_from_env("ACCELERATE_USE_DEEPSPEED")


def prepare(config: Config, G, D, opt_g, opt_d, growing: bool) -> tuple:
    """(G's accelerator, D's accelerator, G, D, opt_g, opt_d), prepared. G's accelerator is
    also the loop's; D's is the same object unless DeepSpeed runs."""
    cfg = config.train
    log_with = "wandb" if config.tracking.wandb else None
    if not uses_deepspeed():
        accelerator = Accelerator(
            mixed_precision=cfg.mixed_precision,
            gradient_accumulation_steps=cfg.grad_accum,
            log_with=log_with,
            # Growing networks leave their not-yet-used layers without gradients.
            kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=growing)],
        )
        G, D, opt_g, opt_d = accelerator.prepare(G, D, opt_g, opt_d)
        return accelerator, accelerator, G, D, opt_g, opt_d

    # The launcher's settings (ZeRO stage, offload) come through the environment; each
    # plugin then learns the batch it sees. Precision stays the experiment's: bf16 autocast
    # over fp32 weights, whose optimizer states ZeRO partitions.
    plugins = {name: ModelPlugin() for name in ("G", "D")}
    for plugin in plugins.values():
        plugin.deepspeed_config.update(
            train_micro_batch_size_per_gpu=cfg.batch_size,
            gradient_accumulation_steps=cfg.grad_accum,
            gradient_clipping=0.0,  # none, as without DeepSpeed
        )
    # On CPU, without this accelerate sees one process while DeepSpeed runs several.
    gloo = [] if torch.cuda.is_available() else [InitProcessGroupKwargs(backend="gloo")]
    g_accelerator = Accelerator(
        mixed_precision="no",
        gradient_accumulation_steps=cfg.grad_accum,
        log_with=log_with,
        deepspeed_plugins=plugins,
        kwargs_handlers=gloo,
    )
    G, opt_g = g_accelerator.prepare(G, opt_g)
    g_accelerator.state.select_deepspeed_plugin("D")
    d_accelerator = Accelerator(mixed_precision="no", gradient_accumulation_steps=cfg.grad_accum)
    D, opt_d = d_accelerator.prepare(D, opt_d)
    return g_accelerator, d_accelerator, G, D, opt_g, opt_d


def everyone(accelerator: Accelerator, ok: bool | torch.Tensor) -> bool:
    """True on every rank if it is true on every rank, read by the host (a sync point)."""
    return bool(everywhere(accelerator, torch.as_tensor(ok, device=accelerator.device)))


def everywhere(accelerator: Accelerator, flag: torch.Tensor) -> torch.Tensor:
    """A 0-d bool tensor, true where `flag` is true on every rank: an all-reduce the device
    queues, which the host does not wait for (unlike `everyone`)."""
    if accelerator.num_processes == 1:
        return flag
    votes = accelerator.reduce(flag.reshape(1).float(), "sum")
    return votes.reshape(()) == accelerator.num_processes


def bare(accelerator: Accelerator, model: nn.Module) -> nn.Module:
    """The module inside its data-parallel wrapper. Accelerate's `unwrap_model` imports
    DeepSpeed to recognise its engines (a second of every start), so only DeepSpeed runs ask
    it."""
    if accelerator.distributed_type == DistributedType.DEEPSPEED:
        return accelerator.unwrap_model(model)
    return model.module if isinstance(model, DistributedDataParallel) else model
