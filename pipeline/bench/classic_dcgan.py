"""The baseline of `ganpipe bench quality`: the classic DCGAN recipe (Radford et al. 2016) as
the PyTorch examples write it, a plain loop of about sixty lines: BCE loss, Adam 2e-4 with
beta1 0.5, batch norm in G and D, N(0, 0.02) init, 4x4 transposed convolutions, batch 64,
shuffled epochs over the training images held in memory. No EMA, no regularizer.

It counts its budget as the pipeline's `train.budget_minutes` does (this process's CPU time
per torch thread) and saves its state as each budget passes, so the bench evaluates both at
the same points and an interrupted run resumes from its last budget:

    python -m pipeline.bench.classic_dcgan --data DIR --out DIR --budgets 2,5 --width 16
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import torch
from torch import nn

from pipeline.data.reader import load_split
from pipeline.train.budget import CpuBudget

Z_DIM = 100  # the examples' nz
BATCH = 64
RESOLUTION = 32  # the examples' 64 px architecture less one 2x stage
SAVE_PREFIX = "budget-"


def generator(width: int, channels: int = 1) -> nn.Module:
    """z (N, 100) -> images (N, channels, 32, 32) in [-1, 1]: 4 -> 8 -> 16 -> 32 px."""

    def up(c_in: int, c_out: int) -> list[nn.Module]:
        return [nn.ConvTranspose2d(c_in, c_out, 4, 2, 1, bias=False), nn.BatchNorm2d(c_out),
                nn.ReLU(True)]  # fmt: skip

    return nn.Sequential(
        nn.Unflatten(1, (Z_DIM, 1, 1)),
        nn.ConvTranspose2d(Z_DIM, width * 4, 4, 1, 0, bias=False),
        nn.BatchNorm2d(width * 4),
        nn.ReLU(True),
        *up(width * 4, width * 2),
        *up(width * 2, width),
        nn.ConvTranspose2d(width, channels, 4, 2, 1, bias=False),
        nn.Tanh(),
    )


def discriminator(width: int, channels: int = 1) -> nn.Module:
    """Images (N, channels, 32, 32) -> one logit each: 32 -> 16 -> 8 -> 4 px -> 1."""

    def down(c_in: int, c_out: int) -> list[nn.Module]:
        return [nn.Conv2d(c_in, c_out, 4, 2, 1, bias=False), nn.BatchNorm2d(c_out),
                nn.LeakyReLU(0.2, True)]  # fmt: skip

    return nn.Sequential(
        nn.Conv2d(channels, width, 4, 2, 1, bias=False),
        nn.LeakyReLU(0.2, True),
        *down(width, width * 2),
        *down(width * 2, width * 4),
        nn.Conv2d(width * 4, 1, 4, 1, 0, bias=False),
        nn.Flatten(0),
    )


def init_weights(module: nn.Module) -> None:
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
        nn.init.normal_(module.weight, 0.0, 0.02)
    elif isinstance(module, nn.BatchNorm2d):
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)


def saved_budgets(out: Path) -> list[Path]:
    return sorted(out.glob(f"{SAVE_PREFIX}*.pt"), key=lambda p: float(p.stem[len(SAVE_PREFIX) :]))


def train(data: Path, out: Path, budgets: list[float], width: int, seed: int) -> None:
    images, _ = load_split(data, "train")
    torch.manual_seed(seed)
    G, D = generator(width, images.shape[1]), discriminator(width, images.shape[1])
    G.apply(init_weights)
    D.apply(init_weights)
    opt_g = torch.optim.Adam(G.parameters(), 2e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(D.parameters(), 2e-4, betas=(0.5, 0.999))
    bce = nn.BCEWithLogitsLoss()
    budget, step = CpuBudget(budgets), 0
    if saved := saved_budgets(out):  # resume from the last budget reached
        state = load_state(saved[-1])
        for part, key in ((G, "G"), (D, "D"), (opt_g, "opt_g"), (opt_d, "opt_d")):
            part.load_state_dict(state[key])
        torch.set_rng_state(state["rng"])
        budget, step = CpuBudget(budgets, state), state["step"]
    while not budget.exhausted:
        for real in images[torch.randperm(len(images))].split(BATCH):  # one shuffled epoch
            ones, zeros = torch.ones(len(real)), torch.zeros(len(real))
            fake = G(torch.randn(len(real), Z_DIM))
            loss_d = bce(D(real), ones) + bce(D(fake.detach()), zeros)
            opt_d.zero_grad()
            loss_d.backward()
            opt_d.step()
            loss_g = bce(D(fake), ones)
            opt_g.zero_grad()
            loss_g.backward()
            opt_g.step()
            step += 1
            if (mark := budget.passed(step)) is not None:
                save(out, mark, G, D, opt_g, opt_d, budget, step)
            if budget.exhausted:
                break


def save(out: Path, mark: float, G, D, opt_g, opt_d, budget: CpuBudget, step: int) -> None:
    """Atomically, so an interrupted run never leaves half a file where a budget should be."""
    path = out / f"{SAVE_PREFIX}{mark:g}.pt"
    state = {"G": G.state_dict(), "D": D.state_dict(), "opt_g": opt_g.state_dict(),
             "opt_d": opt_d.state_dict(), "rng": torch.get_rng_state(), "step": step,
             **budget.state()}  # fmt: skip
    torch.save(state, path.with_suffix(".tmp"))
    os.replace(path.with_suffix(".tmp"), path)
    print(f"budget {mark:g} min: step {step}, {budget.describe()}", flush=True)


def load_state(path: Path) -> dict:
    return torch.load(path, weights_only=True)


@torch.no_grad()
def samples(state: dict, width: int, n: int, seed: int, channels: int = 1) -> torch.Tensor:
    """`n` images from the generator of a saved `state`, drawn as the examples draw theirs: G
    in training mode (batch statistics), batches of the training batch size."""
    G = generator(width, channels)
    G.load_state_dict(state["G"])
    noise = torch.Generator().manual_seed(seed)
    z = torch.randn(n, Z_DIM, generator=noise)
    return torch.cat([G(chunk) for chunk in z.split(BATCH)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--budgets", required=True, help="minutes, comma-separated")
    parser.add_argument("--width", type=int, default=16, help="ngf = ndf")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    budgets = [float(b) for b in args.budgets.split(",")]
    train(args.data, args.out, budgets, args.width, args.seed)


if __name__ == "__main__":
    main()
