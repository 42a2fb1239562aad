"""DeepSpeed ZeRO-1 and ZeRO-2 through `accelerate launch`, 2 CPU processes: G and D each in
an engine of their own train the same model as plain data parallelism, checkpoint with their
optimizer states split across ranks, and resume from those checkpoints."""

import os
import sys
from pathlib import Path

import pytest
import torch
import yaml
from conftest import SMALL_MLP, run_group
from test_distributed import cpu_env, launch

from pipeline.runs import checkpoint

pytestmark = pytest.mark.slow


def deepspeed_env() -> dict[str, str]:
    """DeepSpeed on CPU: its own accelerator setting; ACCELERATE_USE_CPU would bypass it."""
    return {**os.environ, "DS_ACCELERATOR": "cpu", "OMP_NUM_THREADS": "1"}


@pytest.fixture(scope="module")
def config(ring, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("deepspeed") / "ring.yaml"
    model = SMALL_MLP
    # Adam's epsilon well above float rounding: with the default 1e-8, a gradient that is
    # itself at rounding level turns the two all-reduces' rounding differences into updates
    # up to a learning rate apart; with 1e-4 an update is a smooth function of its gradient,
    # so equal gradients give equal weights to 1e-6, and any real difference shows.
    train = {"steps": 2, "batch_size": 64, "grad_accum": 2, "log_every": 1, "adam_eps": 1e-4}
    spec = {"data": {"dir": str(ring)}, "model": model, "train": train, "regularize": {"r1": 0.1}}
    path.write_text(yaml.safe_dump({**spec, "tracking": {"wandb": False}}))
    return path


def train_then_resume(launch_config: str, env: dict, config: Path, run: Path) -> list[dict]:
    """2 steps, then 2 more resumed from the checkpoint: the saved state after each."""
    states = []
    for extra in ([], ["--resume", "train.steps=4"]):
        command = launch(launch_config, "--num_processes", "2", config=config, run=run) + extra
        done = run_group(command, timeout=300, env=env)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        states.append(checkpoint.load(checkpoint.latest(run) / checkpoint.STATE))
    return states


@pytest.fixture(scope="module")
def data_parallel(config, tmp_path_factory) -> list[dict]:
    return train_then_resume("cpu-2proc.yaml", cpu_env(), config, tmp_path_factory.mktemp("ddp"))


@pytest.mark.parametrize("stage", [1, 2])
def test_zero_trains_checkpoints_and_resumes_like_data_parallel(
    stage, config, data_parallel, tmp_path
):
    run = tmp_path / "run"
    states = train_then_resume(f"deepspeed-zero{stage}.yaml", deepspeed_env(), config, run)
    for zero, ddp in zip(states, data_parallel, strict=True):
        assert zero["step"] == ddp["step"]
        for model in ("G", "D", "G_ema"):
            # Equal up to float rounding: same gradients, same Adam updates.
            torch.testing.assert_close(zero[model], ddp[model], atol=1e-6, rtol=1e-5)
    # The resumed half matches too, so Adam's moments came back from DeepSpeed's files, one
    # partition per rank.
    saved = checkpoint.latest(run)
    for model in ("G", "D"):
        parts = sorted(p.name for p in (saved / f"deepspeed-{model}").glob("zero_pp_rank_*"))
        assert parts == [f"zero_pp_rank_{r}_mp_rank_00_optim_states.pt" for r in (0, 1)]
    assert "opt_g" not in states[-1]  # optimizer states live in those files only

    # Without DeepSpeed those files cannot be read: one clear error, nothing overwritten.
    command = [sys.executable, "-m", "pipeline.cli", "train", "--resume", "--run-dir", str(run)]
    done = run_group([*command, "train.steps=6"], timeout=300)
    assert done.returncode == 2
    assert "written under DeepSpeed: resume it with a DeepSpeed launch config" in done.stderr
    assert checkpoint.latest(run) == saved
