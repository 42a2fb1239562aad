"""The training loop: D step(s) -> G step -> EMA -> (every N steps) log, samples, eval, checkpoint.

Runs unchanged on one CPU process or under `accelerate launch` on many GPUs: Accelerate wraps
the models for data parallelism and mixed precision; each rank reads its own shards.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import torch
from accelerate.utils import set_seed
from torch import nn
from tqdm import tqdm

from pipeline.config import Config, intervention_overrides, with_overrides
from pipeline.data.reader import dataset_for, training_batches
from pipeline.errors import UserError
from pipeline.metrics.evaluate import Protocol
from pipeline.metrics.shared import evaluate_shared, training_protocol
from pipeline.models import build_models
from pipeline.models.growth import growth_for
from pipeline.models.registry import FAMILIES
from pipeline.optimizers import adam, default_device_type
from pipeline.runs import checkpoint
from pipeline.runs import directory as runs
from pipeline.tracking import Tracker
from pipeline.train.budget import CpuBudget
from pipeline.train.collapse_guard import interventions_applied, start_guard
from pipeline.train.determinism import use_kernels
from pipeline.train.distributed import prepare, uses_deepspeed
from pipeline.train.ema import EMA
from pipeline.train.monitoring import peak_memory_gb, sigma_stats
from pipeline.train.nonfinite import NonFiniteGuard
from pipeline.train.profiling import StepProfiler
from pipeline.train.progress import Progress
from pipeline.train.rollback import intervene, restore_finite
from pipeline.train.schedule import lr_factor, optimizer_settings, set_learning_rates
from pipeline.train.state import restore, save
from pipeline.train.steps import GAN, discriminator_step, generator_step
from pipeline.train.stop import StopRequest
from pipeline.train.sync_bn import cross_replica
from pipeline.train.toolbox import build_toolbox


def train(config: Config, run_dir: Path, resume: bool = False) -> bool:
    """Train to `train.steps`; False when stopped before (signal or STOP file), checkpointed."""
    cfg = config.train
    use_kernels(cfg.deterministic)
    dataset = dataset_for(config.data)  # fails early, on every rank, if the data is missing
    set_seed(config.seed)  # identical initial weights on every rank
    G, D = build_models(config.model, dataset)
    if cfg.sync_bn:
        G, D = cross_replica(G), cross_replica(D)
    # NHWC convolutions: 28% less time for a G+D pass of the 32 px DCGAN and BigGAN on a CPU.
    # Not under DeepSpeed: ZeRO flattens parameters into partitions, untried with NHWC ones.
    layout = torch.preserve_format
    if cfg.channels_last and dataset.images and not uses_deepspeed():
        layout = torch.channels_last
        G, D = G.to(memory_format=layout), D.to(memory_format=layout)
    device_type = default_device_type()
    rates = optimizer_settings(config)
    opt_g = adam(G.parameters(), *rates["g"], device_type, cfg.adam_eps)
    opt_d = adam(D.parameters(), *rates["d"], device_type, cfg.adam_eps)
    parts = prepare(config, G, D, opt_g, opt_d, growing=FAMILIES[config.model.family].progressive)
    g_accelerator, d_accelerator, G, D, opt_g, opt_d = parts
    accelerator = g_accelerator  # the loop's: devices, reductions, waits, logging
    rank, world, main = (
        accelerator.process_index,
        accelerator.num_processes,
        accelerator.is_main_process,
    )
    if main:
        runs.start(run_dir, config, resume)
    stop = StopRequest(run_dir, accelerator)
    stop.clear()  # a request left by an earlier job was served by its checkpoint
    accelerator.wait_for_everyone()
    info = runs.read_info(run_dir)
    # The collapse guard's interventions so far are part of the run's state.
    applied = interventions_applied(config, accelerator, run_dir) if resume else []
    if applied:
        config = with_overrides(config, intervention_overrides(applied))
        cfg = config.train
        if main:
            print(f"collapse guard: in force since before the resume: {', '.join(applied)}")

    # The toolbox lives on `gan` alone: a collapse-guard intervention replaces it there.
    toolbox = build_toolbox(config, dataset, accelerator)
    bf16 = cfg.mixed_precision == "bf16"
    gan = GAN(*parts, toolbox, cfg.grad_accum, bf16, memory_format=layout)
    if cfg.compile:
        gan.compile(cfg.compile_mode)
    global_batch = cfg.batch_size * world * cfg.grad_accum
    ema = EMA(gan.g_bare, cfg.ema_decay, cfg.ema_start, cfg.ema_half_life, cfg.ema_rampup,
              global_batch)  # fmt: skip
    growth = growth_for(config.model, gan.g_bare, cfg.phase_images)

    progress, counters, mine = Progress(), {}, {}
    set_seed(config.seed + rank)  # different noise on each rank
    if resume:
        counters, mine = restore(gan, ema, run_dir, rank)
        progress = Progress.resumed(counters, cfg.n_dis, len(applied))
    guard = NonFiniteGuard(config.nonfinite)
    # A rank without a saved stream position (the run had fewer processes) starts a stream of
    # its own rather than replaying the first batches.
    own_stream = progress.step and "data" not in mine
    gan.batches = training_batches(
        config.data.dir,
        cfg.batch_size,
        seed=f"{config.seed}@{progress.step}" if own_stream else config.seed,
        rank=rank,
        world=world,
        shuffle_buffer=config.data.shuffle_buffer,
        workers=config.data.workers,
        augment=config.data.augment,
        state=mine.get("data"),
    )
    tracker = Tracker(accelerator, config, run_dir, info["run_id"])
    if main:
        tracker.log({"global_batch": global_batch, "processes": world}, progress.step)
        print(
            f"run {run_dir}: {world} process(es), global batch {global_batch} "
            f"({cfg.batch_size} x {world} processes x {cfg.grad_accum} accumulation), "
            f"steps {progress.step} -> {cfg.steps}",
            flush=True,
        )

    protocol = training_protocol(config, dataset, accelerator.device, main)
    collapse = start_guard(config, protocol, accelerator)
    shards: set[str] = set()
    window = Window()
    profiler = StepProfiler(config.profile, run_dir, rank, accelerator.device)
    bar = tqdm(
        total=cfg.steps,
        initial=progress.step,
        disable=not main,
        unit="step",
        mininterval=1 if sys.stderr.isatty() else 30,  # batch logs get a line every 30 s
    )
    budget = CpuBudget(cfg.budget_minutes, counters)  # counted from here: training alone
    agree = max_over_ranks(accelerator)
    # Last: building the evaluation protocol draws from the generators (a classifier's
    # initial weights), which would shift a resumed run's random stream.
    if "rng" in mine:
        checkpoint.set_rng_state(mine["rng"])
    while progress.step < cfg.steps and not budget.exhausted:
        learning_rate = lr_factor(progress.step, cfg.steps, cfg.lr_decay_from)
        learning_rate *= progress.lr_scale
        set_learning_rates([(gan.opt_g, rates["g"][0]), (gan.opt_d, rates["d"][0])], learning_rate)
        if growth:  # progressive growing: the stage follows the images shown
            level, alpha = growth.apply(progress.images_seen, gan.g_bare, gan.d_bare, ema.model)
        updates = []
        for _ in range(cfg.n_dis):
            updates.append(discriminator_step(gan, shards, progress.d_steps))
            progress.d_steps += 1
        updates.append(generator_step(gan, cfg.batch_size, progress.step))
        for stats in updates:
            window.add(stats)
        ema.update(gan.g_bare, progress.step)
        progress.step += 1
        progress.images_seen += cfg.n_dis * global_batch
        step = progress.step  # this iteration's, for what follows
        bar.update()
        if (profiled := profiler.after(step)) and main:
            bar.write(profiled)
        if guard.record([stats["finite"] for stats in updates]):
            restore_finite(gan, ema, run_dir, guard, progress, cfg.n_dis, tracker)
            bar.n = progress.step
            continue
        if (budget_passed := budget.passed(step, agree)) is not None:
            tracker.log({"budget/minutes": budget_passed, **budget.record()}, step)
        last = step == cfg.steps or budget.exhausted

        if step % cfg.log_every == 0 or last:
            values = {**window.summary(cfg.n_dis * global_batch), **gan.toolbox.stats()}
            values.update(guard.stats(), lr_scale=progress.lr_scale)
            values.update(sigma_stats({"G": gan.g_bare, "D": gan.d_bare}))
            values.update(peak_memory_gb(gan.device))
            skipped = torch.tensor(float(sum(gan.batches.skipped.values())), device=gan.device)
            values["data/skipped"] = accelerator.reduce(skipped, "sum")  # bad samples, all ranks
            values = {k: float(v) for k, v in values.items()}
            if growth:
                values.update(level=level, alpha=alpha)
            if cfg.lr_decay_from < 1:
                values.update(lr_factor=learning_rate)
            tracker.log({**values, "images_seen": progress.images_seen}, step)
            bar.set_postfix(
                img_s=f"{values['img_per_s']:.0f}",
                d=f"{values['loss_d']:.3f}",
                g=f"{values['loss_g']:.3f}",
                refresh=False,
            )
        sampling = step % cfg.sample_every == 0 or last
        measuring = protocol.measures and (step % cfg.eval_every == 0 or last)
        if main and sampling:
            models = {"ema": ema.model, "raw": gan.g_bare}
            write_samples(models, protocol, config, run_dir, tracker, step, accelerator.device)
        metrics = evaluate_shared(ema.model, protocol, config, accelerator) if measuring else None
        if metrics:  # on the main process
            tracker.log({f"eval/{k}": v for k, v in metrics.items() if k != "protocol"}, step)
            for name in ("mode_histogram", "digit_histogram"):
                if name in metrics:
                    tracker.histogram(f"eval/{name}", metrics[name], step)
            bar.write(f"step {step}: " + protocol.headline(metrics))
        if sampling or measuring:  # the other ranks wait for the main process's extra work
            accelerator.wait_for_everyone()
        watching = collapse and collapse.due(step) and not last
        if watching and collapse.watch(gan, tracker, step):
            config, rolled_back = intervene(gan, ema, run_dir, collapse, config, dataset, progress,
                                            tracker)  # fmt: skip
            cfg, rates = config.train, optimizer_settings(config)
            if rolled_back:  # go on from the healthy checkpoint's step
                bar.n = progress.step
                continue
        stopping = not last and stop.agreed(step)
        if step % cfg.checkpoint_every == 0 or last or stopping or budget_passed:
            counters = {**progress.counters(), "run_id": info["run_id"], **budget.state()}
            if growth:  # saved with the models, so that loading them needs no schedule
                counters["stage"] = [level, alpha]
            score = protocol.key_figure(metrics) if metrics else None
            health = collapse.health(progress.interventions) if collapse else None
            saved = save(gan, ema, run_dir, counters, keep=cfg.keep_checkpoints, score=score,
                         guard=health)  # fmt: skip
            if last and not saved:
                raise UserError(
                    f"the final checkpoint (step {step}) could not be written: free disk space "
                    f"under {run_dir} and run again with --resume"
                )
        if stopping:
            if main:
                reason = stop.reason or "asked on another rank"
                bar.write(f"stopped at step {step} ({reason}): checkpoint saved, --resume goes on")
            break

    if (profiled := profiler.close(progress.step)) and main:
        bar.write(profiled)
    bar.close()
    runs.write_json(
        run_dir / "ranks" / f"rank{rank}.json",
        {
            "rank": rank,
            "processes": world,
            "step": progress.step,
            "images_seen": progress.images_seen,
            "shards_read": sorted(shards),
            "parameters": {
                "G": runs.digest(gan.g_bare.named_parameters()),
                "D": runs.digest(gan.d_bare.named_parameters()),
            },
            "buffers": {  # batch-norm statistics, spectral-norm vectors
                "G": runs.digest(gan.g_bare.named_buffers()),
                "D": runs.digest(gan.d_bare.named_buffers()),
            },
            "toolbox": {k: v.tolist() for k, v in gan.toolbox.stateful.state_dict().items()},
        },
    )
    tracker.close()
    stop.close()
    accelerator.wait_for_everyone()
    return progress.step == cfg.steps or budget.exhausted


def max_over_ranks(accelerator):
    """The largest of the ranks' values (None on one process: nothing to agree on)."""
    if accelerator.num_processes == 1:
        return None
    device = accelerator.device
    return lambda value: accelerator.reduce(torch.tensor(value, device=device), "max").item()


class Window:
    """Loss statistics since the last log line, kept on the device until they are printed:
    each value is listed as it comes (adding them up at every step costs a kernel each)."""

    FOLD_AT = 1000  # values kept per key before they are added up

    def __init__(self):
        self.values: dict[str, list[torch.Tensor]] = {}
        self.counts: dict[str, int] = {}
        self.steps, self.start = 0, time.perf_counter()

    def add(self, stats: dict[str, Any]) -> None:
        n = stats["n"]
        for key, value in stats.items():
            if key in ("n", "finite"):
                continue
            values = self.values.setdefault(key, [])
            values.append(value)
            if len(values) >= self.FOLD_AT:  # a long log interval keeps a bounded list
                values[:] = [torch.stack(values).sum()]
            self.counts[key] = self.counts.get(key, 0) + n
        self.steps += "loss_g" in stats

    def summary(self, images_per_step: int) -> dict[str, float]:
        elapsed = time.perf_counter() - self.start
        sums = {k: torch.stack(v).sum() for k, v in self.values.items()}
        out = {k: float(v) / self.counts[k] for k, v in sums.items()}  # syncs here only
        out["img_per_s"] = self.steps * images_per_step / max(elapsed, 1e-9)
        self.__init__()
        return out


def write_samples(
    generators: dict[str, nn.Module], protocol: Protocol, config: Config, run_dir: Path,
    tracker, step: int, device,
) -> None:  # fmt: skip
    """Pictures from the same fixed noise at every step, so runs and steps compare by eye:
    samples/step-N.png from the EMA generator, raw-step-N.png from the trained one; both go
    to W&B side by side (samples/ema, samples/raw)."""
    for name, generator in generators.items():
        picture = protocol.picture(generator, config.seed, config.eval.grid_size, device)
        prefix = "" if name == "ema" else f"{name}-"
        picture.save(run_dir / "samples" / f"{prefix}step-{step:08d}.png")
        tracker.image(f"samples/{name}", picture, step)
