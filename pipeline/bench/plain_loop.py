"""The baseline of `ganpipe bench throughput`: the training step as a plain PyTorch loop would
write it, with the run's models, batch, loss, n_dis, R1, EMA and dtype, on one fixed real batch
already on the device: no loader, no Accelerate, no finiteness checks, no logging. What the
pipeline costs over it is the price of its machinery. The same step, run once under a FLOP
counter, gives the FLOPs per image behind the MFU figures."""

from __future__ import annotations

import copy
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from pipeline.config import Config
from pipeline.data.description import Dataset
from pipeline.data.reader import spread_sample
from pipeline.models import build_models
from pipeline.train.losses import adversarial_loss
from pipeline.train.penalties import input_gradient_norm2


class PlainLoop:
    def __init__(self, config: Config, dataset: Dataset, device: str = "cpu"):
        cfg = config.train
        self.config, self.device = config, device
        torch.manual_seed(config.seed)
        self.G, self.D = (m.to(device) for m in build_models(config.model, dataset))
        self.ema = copy.deepcopy(self.G).requires_grad_(False) if cfg.ema_decay else None
        betas_g, betas_d = tuple(cfg.betas_g), tuple(cfg.betas_d)
        eps = cfg.adam_eps
        self.opt_g = torch.optim.Adam(self.G.parameters(), cfg.lr_g, betas_g, eps, foreach=True)
        self.opt_d = torch.optim.Adam(self.D.parameters(), cfg.lr_d, betas_d, eps, foreach=True)
        self.loss = adversarial_loss(cfg.loss, cfg.relativistic)
        real, labels = spread_sample(config.data.dir, cfg.batch_size)
        self.real = real.to(device)
        self.y = labels.to(device) if self.G.n_classes else None
        self.both_y = None if self.y is None else torch.cat([self.y, self.y])
        self.images_per_step = cfg.n_dis * cfg.batch_size

    def autocast(self):
        bf16 = self.config.train.mixed_precision == "bf16"
        return torch.autocast(self.device, torch.bfloat16, enabled=bf16)

    def step(self, k: int, penalties: bool = True) -> None:
        cfg, reg = self.config.train, self.config.regularize
        G, D, real, y = self.G, self.D, self.real, self.y
        for d_step in range(cfg.n_dis):
            z = torch.randn(len(real), G.z_dim, device=self.device)
            with torch.no_grad(), self.autocast():
                fake = G(z, y)
            with self.autocast():
                logits = D(torch.cat([real, fake.to(real.dtype)]), self.both_y).float()
                real_logits, fake_logits = logits.chunk(2)
                d_loss = self.loss.d_loss(real_logits, fake_logits)
                lazy_r1 = reg.r1 and (k * cfg.n_dis + d_step) % reg.r1_every == 0
                if penalties and lazy_r1:
                    norm2 = input_gradient_norm2(D, real, y)
                    d_loss = d_loss + reg.r1 / 2 * reg.r1_every * norm2.mean()
            self.opt_d.zero_grad(set_to_none=True)
            d_loss.backward()
            self.opt_d.step()
        D.requires_grad_(False)
        with self.autocast():
            with torch.no_grad():
                anchor = D(real, y).float() if self.loss.uses_real_in_g else None
            z = torch.randn(len(real), G.z_dim, device=self.device)
            g_loss = self.loss.g_loss(D(G(z, y), y).float(), anchor)
        self.opt_g.zero_grad(set_to_none=True)
        g_loss.backward()
        self.opt_g.step()
        D.requires_grad_(True)
        if self.ema is not None:
            weight = 1 - cfg.ema_decay
            torch._foreach_lerp_(list(self.ema.parameters()), list(G.parameters()), weight)

    def images_per_second(self, steps: int, warmup: int) -> float:
        """Over `steps` steps after `warmup` untimed ones (n_dis x batch images per step, as
        the pipeline counts them)."""
        for k in range(warmup):
            self.step(k)
        synchronize(self.device)
        started = time.perf_counter()
        for k in range(warmup, warmup + steps):
            self.step(k)
        synchronize(self.device)
        return steps * self.images_per_step / (time.perf_counter() - started)

    def flops_per_image(self) -> float:
        """Forward and backward FLOPs of G and D per training image. Penalties are left out:
        the FLOP counter cannot follow R1's double backward."""
        with FlopCounterMode(display=False) as counter:
            self.step(0, penalties=False)
        return counter.get_total_flops() / self.images_per_step


def synchronize(device: str) -> None:
    """Wait for queued GPU work, so wall-clock times count it."""
    if device == "cuda":
        torch.cuda.synchronize()


def peak_flops(device: str, dtype: torch.dtype, repeats: int = 20) -> float:
    """The device's measured matrix-multiply rate (FLOP/s) at `dtype`: the MFU denominator."""
    size = 8192 if device == "cuda" else 1024  # large enough to reach the peak
    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)
    a @ b  # warm-up
    synchronize(device)
    started = time.perf_counter()
    for _ in range(repeats):
        a @ b
    synchronize(device)
    return 2 * size**3 * repeats / (time.perf_counter() - started)
