"""The baseline of `ganpipe bench throughput`: the training step as a plain PyTorch loop would
write it, with the run's models, batch, loss, n_dis, R1, EMA and dtype, on one fixed real batch
already on the device: no loader, no Accelerate, no finiteness checks, no logging. What the
pipeline costs over it is the price of its machinery."""

from __future__ import annotations

import copy
import time

import torch

from pipeline.config import Config
from pipeline.data.reader import spread_sample
from pipeline.models import build_models
from pipeline.train.losses import adversarial_loss


def plain_images_per_second(
    config: Config, index: dict, steps: int, warmup: int, device: str = "cpu"
) -> float:
    """Images per second (n_dis x batch per step, as the pipeline counts) over `steps` steps
    after `warmup` untimed ones."""
    cfg, reg = config.train, config.regularize
    torch.manual_seed(config.seed)
    G, D = (m.to(device) for m in build_models(config.model, index))
    ema = copy.deepcopy(G).requires_grad_(False) if cfg.ema_decay else None
    opt_g = torch.optim.Adam(G.parameters(), cfg.lr_g, betas=tuple(cfg.betas_g), foreach=True)
    opt_d = torch.optim.Adam(D.parameters(), cfg.lr_d, betas=tuple(cfg.betas_d), foreach=True)
    loss = adversarial_loss(cfg.loss, cfg.relativistic)
    real, labels = spread_sample(config.data.dir, cfg.batch_size)
    real = real.to(device)
    y = labels.to(device) if G.n_classes else None
    bf16 = torch.autocast(device, torch.bfloat16, enabled=cfg.mixed_precision == "bf16")

    both_y = None if y is None else torch.cat([y, y])

    def step(k: int) -> None:
        for d_step in range(cfg.n_dis):
            z = torch.randn(len(real), G.z_dim, device=device)
            with torch.no_grad(), bf16:
                fake = G(z, y)
            with bf16:
                logits = D(torch.cat([real, fake.to(real.dtype)]), both_y).float()
                real_logits, fake_logits = logits.chunk(2)
                d_loss = loss.d_loss(real_logits, fake_logits)
                if reg.r1 and (k * cfg.n_dis + d_step) % reg.r1_every == 0:  # lazy R1
                    x = real.detach().requires_grad_(True)
                    (grad,) = torch.autograd.grad(D(x, y).float().sum(), x, create_graph=True)
                    norm2 = grad.float().pow(2).flatten(1).sum(1)
                    d_loss = d_loss + reg.r1 / 2 * reg.r1_every * norm2.mean()
            opt_d.zero_grad(set_to_none=True)
            d_loss.backward()
            opt_d.step()
        D.requires_grad_(False)
        with bf16:
            with torch.no_grad():
                anchor = D(real, y).float() if loss.uses_real_in_g else None
            z = torch.randn(len(real), G.z_dim, device=device)
            g_loss = loss.g_loss(D(G(z, y), y).float(), anchor)
        opt_g.zero_grad(set_to_none=True)
        g_loss.backward()
        opt_g.step()
        D.requires_grad_(True)
        if ema is not None:
            torch._foreach_lerp_(list(ema.parameters()), list(G.parameters()), 1 - cfg.ema_decay)

    for k in range(warmup):
        step(k)
    if device == "cuda":
        torch.cuda.synchronize()
    started = time.perf_counter()
    for k in range(warmup, warmup + steps):
        step(k)
    if device == "cuda":
        torch.cuda.synchronize()
    return steps * cfg.n_dis * cfg.batch_size / (time.perf_counter() - started)
