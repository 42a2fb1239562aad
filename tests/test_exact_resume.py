"""Killed with SIGKILL at a random step and resumed, a deterministic run ends bit for bit where
the uninterrupted run ends: models, EMA, optimizers, toolbox state and every rank's files."""

import json
import os
import random
import signal
import subprocess
import sys
import time

import pytest
import torch
import yaml
from conftest import ganpipe, run_group
from test_distributed import cpu_env, launch

from pipeline.train import checkpoint

N = 100  # checkpoint at N, end at 2N


def write_config(ring, tmp_path):
    config = tmp_path / "exact.yaml"
    settings = {
        "data": {"dir": str(ring), "shuffle_buffer": 300},
        "model": {"family": "mlp", "width": 128, "depth": 3, "d_width": 128, "d_depth": 3},
        "train": {"steps": 2 * N, "batch_size": 64, "deterministic": True, "log_every": 1,
                  "checkpoint_every": N, "eval_every": 10**6, "sample_every": 10**6,
                  "ema_decay": 0.99, "lr_decay_from": 0.5},
        "regularize": {"r1": 0.1, "lecam": 0.01},
        "eval": {"n_samples": 500},
        "tracking": {"wandb": False},
    }  # fmt: skip
    config.write_text(yaml.safe_dump(settings))
    return config


def kill_after_checkpoint(command: list[str], run, env=None) -> int:
    """Start training, SIGKILL every process of it at a random step after the checkpoint at N;
    returns the last step it logged."""
    kill_at = random.Random().randint(N + 1, N + 20)
    metrics = run / "metrics.jsonl"
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    with subprocess.Popen(command, env=env, start_new_session=True, **quiet) as proc:
        deadline = time.monotonic() + 180
        while logged_step(metrics) < kill_at:
            assert proc.poll() is None and time.monotonic() < deadline, "training ended early"
            time.sleep(0.002)
        os.killpg(proc.pid, signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL
    last = logged_step(metrics)
    assert kill_at <= last < 2 * N, "the kill came too late to test anything"
    assert checkpoint.load(checkpoint.latest(run) / checkpoint.STATE)["step"] == N
    return last


def logged_step(metrics) -> int:
    try:
        lines = metrics.read_text().splitlines()
    except FileNotFoundError:
        return -1
    steps = [json.loads(line)["step"] for line in lines[-3:] if line.endswith("}")]
    return max(steps, default=-1)


def assert_bitwise_equal(run_a, run_b, ranks: int):
    final_a, final_b = (checkpoint.latest(r) for r in (run_a, run_b))
    assert final_a.name == final_b.name == f"step-{2 * N:08d}"
    for name in ["state.pt", *(checkpoint.rank_file(r) for r in range(ranks))]:
        a, b = checkpoint.load(final_a / name), checkpoint.load(final_b / name)
        assert_same(a, b, name)
    for r in range(ranks):
        a, b = (json.loads((run / "ranks" / f"rank{r}.json").read_text()) for run in (run_a, run_b))
        assert a["parameters"] == b["parameters"] and a["buffers"] == b["buffers"]


# Each run has its own tracker id, and the time it spent is measured, not computed.
NOT_COMPUTED = {"run_id", "budget_minutes", "budget_wall_seconds"}


def assert_same(a, b, where: str):
    if isinstance(a, torch.Tensor):
        assert torch.equal(a, b), f"{where} differs by up to {(a - b).abs().max()}"
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for key in a:
            assert_same(a[key], b[key], f"{where}/{key}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_same(x, y, f"{where}[{i}]")
    elif where.rpartition("/")[2] not in NOT_COMPUTED:
        assert a == b, where


def train_command(config, run) -> list[str]:
    return [sys.executable, "-m", "pipeline.cli", "train", "--config", str(config),
            "--run-dir", str(run)]  # fmt: skip


def test_a_killed_run_resumes_bit_for_bit(ring, tmp_path):
    config = write_config(ring, tmp_path)
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    ganpipe("train", "--config", config, "--run-dir", whole)
    kill_after_checkpoint(train_command(config, killed), killed)
    ganpipe("train", "--resume", "--run-dir", killed)
    assert_bitwise_equal(whole, killed, ranks=1)


@pytest.mark.slow
def test_a_killed_two_process_run_resumes_bit_for_bit(ring, tmp_path):
    config = write_config(ring, tmp_path)
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    done = run_group(launch("cpu-2proc.yaml", config=config, run=whole), 300, env=cpu_env())
    assert done.returncode == 0, done.stderr[-3000:]
    kill_after_checkpoint(launch("cpu-2proc.yaml", config=config, run=killed), killed, cpu_env())
    resumed = [*launch("cpu-2proc.yaml", config=config, run=killed), "--resume"]
    done = run_group(resumed, 300, env=cpu_env())
    assert done.returncode == 0, done.stderr[-3000:]
    assert_bitwise_equal(whole, killed, ranks=2)
