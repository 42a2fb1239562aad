"""The two halves of a GAN iteration. Both accumulate gradients over micro-batches and sync
them across processes only on the last one (under DeepSpeed, its engine steps there), and skip
an update whose loss or gradients are not finite. Nothing here waits for the device: the
finiteness flags stay tensors, read by the loop's guard every few iterations."""

from __future__ import annotations

import functools
from collections.abc import Iterator
from contextlib import nullcontext
from dataclasses import dataclass

import torch
from accelerate import Accelerator
from torch import nn

from pipeline.data.reader import Batch
from pipeline.train.distributed import bare, everywhere
from pipeline.train.nonfinite import finite_update, gradient_norm, keep_if, step_if
from pipeline.train.penalties import Judged
from pipeline.train.toolbox import Toolbox


@dataclass
class GAN:
    """The prepared (DDP- or DeepSpeed-wrapped) models and optimizers, plus the bare modules.
    Each model's backward goes through its own accelerator (the same one without DeepSpeed)."""

    g_accelerator: Accelerator  # also the devices, reductions and waits of the whole loop
    d_accelerator: Accelerator
    G: nn.Module
    D: nn.Module
    opt_g: torch.optim.Optimizer
    opt_d: torch.optim.Optimizer
    toolbox: Toolbox
    grad_accum: int
    bf16: bool  # autocast to bfloat16 (weights and optimizer states stay fp32)
    batches: Iterator[Batch] | None = None  # the real-data stream
    memory_format: torch.memory_format = torch.preserve_format  # of real batches on the device

    def __post_init__(self):
        self.device = self.g_accelerator.device
        self.g_bare = bare(self.g_accelerator, self.G)
        self.d_bare = bare(self.d_accelerator, self.D)
        self.n_classes = self.g_bare.n_classes
        # Listed once: walking the module tree at every step shows on small models.
        self.g_params = list(self.g_bare.parameters())
        self.d_params = list(self.d_bare.parameters())
        self.zero = torch.zeros((), device=self.device)  # the penalty of a step without one
        self.deepspeed = self.d_accelerator is not self.g_accelerator
        # The optimizers' own zero_grad and step: Accelerate's wrappers add only fp16 loss
        # scaling and XLA handling, neither used here, and look up optional packages on every
        # call (measurable on small models). DeepSpeed's wrappers stay.
        unwrap = (lambda o: o) if self.deepspeed else (lambda o: getattr(o, "optimizer", o))
        self.g_optimizer, self.d_optimizer = unwrap(self.opt_g), unwrap(self.opt_d)

    def compile(self, mode: str = "default") -> None:
        """torch.compile the passes the updates differentiate: D on real and fake in the D
        step, G in the G step. Penalties that differentiate D twice (R1, WGAN-GP) and the G
        step's pass through a frozen D keep the bare, eager modules. Under CUDA graphs
        (reduce-overhead) each compiled call begins a new replay once the backward of the
        one before has run, which is the order of the steps' calls."""
        if self.deepspeed:  # its engines hold (and checkpoint) the models
            print("train.compile: ignored under DeepSpeed, the models run eager", flush=True)
            return
        torch._dynamo.config.suppress_errors = True  # a graph that cannot compile runs eager
        self.G, self.D = torch.compile(self.G, mode=mode), torch.compile(self.D, mode=mode)

    def real(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor | None]:
        """A batch on the device, in the models' memory layout, and its labels (None for an
        unconditional model)."""
        x = batch.x.to(self.device, non_blocking=True, memory_format=self.memory_format)
        y = batch.y.to(self.device, non_blocking=True) if self.n_classes else None
        return x, y

    def latents(self, n: int, labels: torch.Tensor | None = None):
        z = torch.randn(n, self.g_bare.z_dim, device=self.device)
        if not self.n_classes:
            return z, None
        if labels is None:
            labels = torch.randint(0, self.n_classes, (n,), device=self.device)
        return z, labels

    def autocast(self):
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16)

    def micro_batch(self, accelerator: Accelerator, model: nn.Module, i: int):
        """Gradients of micro-batch i sync across processes on the last micro-batch only.
        DeepSpeed accumulates by itself (ZeRO-2 partitions gradients as they come): it is
        told which micro-batch ends the step."""
        last = i == self.grad_accum - 1
        accelerator.sync_gradients = last
        return nullcontext() if last or self.deepspeed else accelerator.no_sync(model)


def discriminator_step(gan: GAN, shards: set[str], d_step: int) -> dict:
    """One D update on real batches and fresh fakes (G is not differentiated), both augmented
    alike, plus the toolbox's penalties; `d_step` D updates came before it in the run (lazy
    penalties and ADA keep time by them)."""
    acc, box = gan.d_accelerator, gan.toolbox
    gan.d_optimizer.zero_grad(set_to_none=True)
    state = box.stateful.state_dict() if box.stateful else {}  # ADA's p, LeCam's averages
    kept = {k: v.clone() for k, v in state.items()}
    parts = []  # per micro-batch: loss, penalty, mean D(real), mean D(fake)
    for i in range(gan.grad_accum):
        batch = next(gan.batches)
        shards.update(batch.shards)
        real, labels = gan.real(batch)
        z, y = gan.latents(len(real), labels)
        with torch.no_grad(), gan.autocast():
            fake = gan.g_bare(z, y)
        # Real and fake go through D in one call: one forward per backward, as DDP expects.
        with gan.micro_batch(acc, gan.D, i):
            seen = box.augment(torch.cat([real, fake.to(real.dtype)]))
            with gan.autocast():
                both_y = None if y is None else torch.cat([y, y])
                logits = gan.D(seen, both_y).float()
            real_logits, fake_logits = logits.chunk(2)  # chunk: a packed D gives fewer logits
            loss = box.loss.d_loss(real_logits, fake_logits)
            judged = Judged(gan.d_bare, *seen.chunk(2), y, real_logits, fake_logits, d_step)
            with gan.autocast():
                penalties = [p for term in box.d_terms if (p := term(judged)) is not None]
            penalty = sum(penalties[1:], penalties[0]) if penalties else gan.zero
            acc.backward(loss + penalty)  # averaged over micro-batches by the accelerator
        box.augment.observe(real_logits)
        parts.append(torch.stack([loss, penalty, real_logits.mean(), fake_logits.mean()]))
    stats = functools.reduce(torch.add, parts).detach()  # no kernel for one micro-batch
    norm = gradient_norm(gan.d_params)
    finite = everywhere(acc, finite_update(stats[:2], norm))
    if not gan.deepspeed:  # DeepSpeed's engine has already stepped, in backward
        step_if(gan.d_optimizer, finite)
    keep_if(finite, state, kept)  # nor do the toolbox's averages keep NaNs
    box.augment.adjust(d_step)
    names = ("loss_d", "penalty_d", "d_real", "d_fake")
    stats = {**dict(zip(names, stats, strict=True)), "n": gan.grad_accum, "finite": finite}
    return {**stats, "grad_norm_d": norm * gan.grad_accum}  # the log averages over n


def generator_step(gan: GAN, batch_size: int, step: int) -> dict:
    """One G update through a frozen D (bare module: D's weights get no gradient, no sync).
    Relativistic losses also need D's view of a real batch; G then draws that batch's classes."""
    acc, box = gan.g_accelerator, gan.toolbox
    gan.g_optimizer.zero_grad(set_to_none=True)
    set_requires_grad(gan.d_params, False)
    losses = []
    for i in range(gan.grad_accum):
        real_logits, labels = None, None
        if box.loss.uses_real_in_g:
            real, labels = gan.real(next(gan.batches))
            with torch.no_grad(), gan.autocast():
                real_logits = gan.d_bare(box.augment(real), labels).float()
            batch_size = len(real)
        z, y = gan.latents(batch_size, labels)
        with gan.micro_batch(acc, gan.G, i):
            with gan.autocast():
                fake_logits = gan.d_bare(box.augment(gan.G(z, y)), y).float()
                loss = box.loss.g_loss(fake_logits, real_logits)
                terms = [term(gan, step) for term in box.g_terms]
            acc.backward(sum((t for t in terms if t is not None), loss))
        losses.append(loss.detach())
    total = functools.reduce(torch.add, losses)
    norm = gradient_norm(gan.g_params)
    finite = everywhere(acc, finite_update(total, norm))
    if not gan.deepspeed:
        step_if(gan.g_optimizer, finite)
    set_requires_grad(gan.d_params, True)
    return {"loss_g": total, "grad_norm_g": norm * gan.grad_accum, "n": gan.grad_accum,
            "finite": finite}  # fmt: skip


def set_requires_grad(parameters: list[nn.Parameter], flag: bool) -> None:
    for p in parameters:
        p.requires_grad_(flag)
