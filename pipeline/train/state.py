"""A training run's state in a checkpoint: written by every rank, published by the main process,
read back on resume. What a checkpoint holds is listed in pipeline/runs/checkpoint.py."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator
from accelerate.utils import broadcast_object_list
from torch import nn

from pipeline.errors import UserError
from pipeline.runs import checkpoint
from pipeline.train.distributed import everyone
from pipeline.train.ema import EMA
from pipeline.train.steps import GAN

DEEPSPEED = "deepspeed"  # checkpoint subfolders deepspeed-G, deepspeed-D


def save(gan: GAN, ema: EMA, run_dir: Path, counters: dict[str, Any], *, keep: int,
         score: float | None = None, guard: dict | None = None) -> bool:  # fmt: skip
    """Checkpoint at `counters["step"]`; the counters (step, images seen, tracker run id, ...)
    go into state.pt, `score` (lower is better) ranks it for keeping, `guard` marks it healthy
    or not for the collapse guard. False when some rank
    could not write its part (a full disk): the checkpoint is dropped and the previous one
    stays as it was."""
    acc, step = gan.g_accelerator, counters["step"]
    try:
        stage = checkpoint.staging(run_dir, step)
        mine = {"rng": checkpoint.rng_state(), "data": gan.batches.state_dict(),
                "buffers": rank_buffers(gan, ema)}  # fmt: skip
        checkpoint.write(stage / checkpoint.rank_file(acc.process_index), mine)
        if gan.deepspeed:  # ZeRO splits the optimizer states across ranks: each saves its part
            for name, engine in (("G", gan.G), ("D", gan.D)):
                engine.save_checkpoint(stage, tag=f"{DEEPSPEED}-{name}", save_latest=False)
        if acc.is_main_process:
            checkpoint.write(stage / checkpoint.STATE, training_state(gan, ema, counters))
        written = True
    except OSError as err:
        print(f"rank {acc.process_index}: cannot write checkpoint: {err}", file=sys.stderr)
        written = False
    if everyone(acc, written) and acc.is_main_process:
        try:
            checkpoint.publish(run_dir, step, keep, score, guard)
        except OSError as err:
            print(f"cannot publish checkpoint: {err}", file=sys.stderr)
            written = False
    if everyone(acc, written):
        return True
    if acc.is_main_process:
        checkpoint.discard(run_dir, step)
        before = checkpoint.published(run_dir)
        kept = f"{before[-1]} is intact" if before else "no earlier checkpoint exists"
        print(f"warning: checkpoint at step {step} not written; {kept}", file=sys.stderr)
    return False


def training_state(gan: GAN, ema: EMA, counters: dict[str, Any]) -> dict[str, Any]:
    optimizers = {} if gan.deepspeed else {"opt_g": gan.opt_g, "opt_d": gan.opt_d}
    return {
        **counters,
        "G": gan.g_bare.state_dict(),
        "D": gan.d_bare.state_dict(),
        "G_ema": ema.state_dict(),
        **{name: opt.state_dict() for name, opt in optimizers.items()},
        "toolbox": gan.toolbox.stateful.state_dict(),
    }


def restore(
    gan: GAN, ema: EMA, run_dir: Path, rank: int, which: str | None = None, strict: bool = True
) -> tuple[dict, dict]:
    """Models (with this rank's own buffers), optimizers and toolbox from the newest intact
    checkpoint (or the one `which` names, see `checkpoint.chosen`); returns its counters (step,
    images seen, ...) and this rank's random generators and data position, which the caller
    restores or not. `strict=False` for a rollback within a run: an intervention since that
    checkpoint may have added toolbox parts (they keep their fresh state) or removed some."""
    latest = newest_intact(gan.g_accelerator, run_dir, which)
    state = checkpoint.load(latest / checkpoint.STATE)
    if gan.deepspeed:  # weights and this rank's optimizer partition, by DeepSpeed
        for name, engine in (("G", gan.G), ("D", gan.D)):
            tag = f"{DEEPSPEED}-{name}"
            if not (latest / tag).is_dir():
                raise UserError(
                    f"{latest} was not written under DeepSpeed: resume it with the launch "
                    "config it was trained with"
                )
            engine.load_checkpoint(latest, tag=tag)
    else:
        if "opt_g" not in state:
            raise UserError(
                f"{latest} was written under DeepSpeed: resume it with a DeepSpeed launch config"
            )
        gan.g_bare.load_state_dict(state["G"])
        gan.d_bare.load_state_dict(state["D"])
        gan.opt_g.load_state_dict(state["opt_g"])
        gan.opt_d.load_state_dict(state["opt_d"])
    ema.load_state_dict(state["G_ema"])
    gan.toolbox.stateful.load_state_dict(state.get("toolbox", {}), strict=strict)
    path = latest / checkpoint.rank_file(rank)  # absent on more processes than the run had
    mine = checkpoint.load(path) if path.is_file() else {}
    for name, module in buffer_owners(gan, ema).items():
        for key, value in mine.get("buffers", {}).get(name, {}).items():
            module.get_buffer(key).copy_(value)
    counters = {k: v for k, v in state.items() if isinstance(v, (int, float, str))}
    return counters, mine


def buffer_owners(gan: GAN, ema: EMA) -> dict[str, nn.Module]:
    return {"G": gan.g_bare, "D": gan.d_bare, "G_ema": ema.model}


def rank_buffers(gan: GAN, ema: EMA) -> dict[str, dict[str, torch.Tensor]]:
    """This rank's buffers. Batch-norm statistics that a rank updates from its own batches
    outside DDP's broadcast drift apart across ranks; state.pt holds the main process's only,
    so without these a resumed rank would go on from another rank's statistics."""
    return {name: dict(module.named_buffers()) for name, module in buffer_owners(gan, ema).items()}


def newest_intact(acc: Accelerator, run_dir: Path, which: str | None = None) -> Path:
    found = agreed_checkpoint(acc, run_dir, which)
    if found is None:
        raise UserError(f"no checkpoint under {checkpoint.directory(run_dir)}")
    return found


def agreed_checkpoint(acc: Accelerator, run_dir: Path, which: str | None = None) -> Path | None:
    """The checkpoint `which` names (see `checkpoint.chosen`), or None. Checked by the main
    process alone (reading gigabytes once is enough); the others follow its choice."""
    chosen: list[Any] = [None]
    if acc.is_main_process:
        try:
            found = checkpoint.chosen(run_dir, which)
            chosen = [found.name if found else ""]
        except UserError as err:  # every checkpoint damaged: all ranks stop with the message
            chosen = [str(err)]
    broadcast_object_list(chosen)
    if not chosen[0]:
        return None
    if not chosen[0].startswith(checkpoint.PREFIX):
        raise UserError(chosen[0])
    return checkpoint.directory(run_dir) / chosen[0]
