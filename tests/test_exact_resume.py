"""Killed with SIGKILL at a random step and resumed, a deterministic run ends bit for bit where
the uninterrupted run ends: models, EMA, optimizers, toolbox state and every rank's files."""

import contextlib
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

from pipeline.runs import checkpoint

pytestmark = pytest.mark.slow  # starts training processes

N = 30  # checkpoint at N, end at 2N: enough steps for every lazy interval to recur


def write_config(ring, tmp_path, **sections):
    """The deterministic MLP run; `sections` replace whole sections of it."""
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
    config.write_text(yaml.safe_dump({**settings, **sections}))
    return config


def kill_after_checkpoint(command: list[str], run, env=None) -> int:
    """Start training, SIGKILL every process of it at a random step after the checkpoint at N;
    returns the last step it logged."""
    kill_at = random.Random().randint(N + 1, N + 5)
    metrics = run / "metrics.jsonl"
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    with subprocess.Popen(command, env=env, start_new_session=True, **quiet) as proc:
        try:  # no deadline of its own: a loaded machine is slow, a hung run meets the timeout
            while logged_step(metrics) < kill_at:
                assert proc.poll() is None, "training ended before the kill"
                time.sleep(0.01)
        finally:
            with contextlib.suppress(ProcessLookupError):
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


def test_a_run_with_an_n_dis_intervention_resumes_bit_for_bit(ring, tmp_path):
    """The collapse guard doubles D's steps at step 10 (its check always fails). Lazy R1 every
    3rd D step lands on the same D steps after the resume at N only if their count is saved:
    N x the new n_dis would be 10 too many."""
    config = write_config(
        ring, tmp_path,
        regularize={"r1": 0.1, "r1_every": 3, "lecam": 0.01},
        collapse_guard={"every": 10, "samples": 200, "real_samples": 400, "patience": 1,
                        "max_d_accuracy": 0.0, "interventions": ["train.n_dis=2"]},
    )  # fmt: skip
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    ganpipe("train", "--config", config, "--run-dir", whole)
    alerts = [json.loads(line) for line in (whole / "metrics.jsonl").open() if '"alert"' in line]
    assert "applied train.n_dis=2 (1/1)" in alerts[0]["text"] and alerts[0]["step"] == 10
    kill_after_checkpoint(train_command(config, killed), killed)
    ganpipe("train", "--resume", "--run-dir", killed)
    assert_bitwise_equal(whole, killed, ranks=1)


IMAGE_MODELS = {  # tiny on purpose, conditional, with ADA and lazy R1: the state to restore
    "dcgan": ("digits16", {"family": "dcgan", "width": 4, "d_width": 4}),
    "vaegan": ("digits16", {"family": "vaegan", "width": 4, "d_width": 4}),
    "progan": ("digits16", {"family": "progan", "width": 4, "d_width": 4}),
    "biggan": ("digits32", {"family": "biggan", "width": 2, "d_width": 2, "attention": 16,
                            "shared_dim": 8, "spectral_norm_g": True}),
    # style mixing and per-pixel noise draw from the generator's random stream each step
    "stylegan2": ("digits16", {"family": "stylegan2", "width": 8, "d_width": 8,
                               "channel_base": 64, "mapping_layers": 2, "minibatch_stddev": 4}),
}  # fmt: skip


def write_image_config(family, request, tmp_path):
    data, model = IMAGE_MODELS[family]
    config = tmp_path / "exact.yaml"
    settings = {
        "data": {"dir": str(request.getfixturevalue(data)), "shuffle_buffer": 100},
        "model": {**model, "z_dim": 8, "conditional": True},
        # progan: 360 images a phase, so the resume at step N = 480 images is mid-fade
        "train": {"steps": 2 * N, "batch_size": 16, "deterministic": True, "log_every": 1,
                  "checkpoint_every": N, "eval_every": 10**6, "sample_every": 10**6,
                  "ema_decay": 0.99, "phase_images": 360},
        "regularize": {"r1": 0.1, "r1_every": 4},
        "d_augment": {"ada_target": 0.6, "ada_interval": 2, "ada_images": 2000},
        "eval": {"n_samples": 100, "n_samples_during_training": 100},
        "tracking": {"wandb": False},
    }  # fmt: skip
    config.write_text(yaml.safe_dump(settings))
    return config


FAMILIES = ["mlp", *sorted(IMAGE_MODELS)]


def config_for(family, request, tmp_path):
    if family == "mlp":
        return write_config(request.getfixturevalue("ring"), tmp_path)
    return write_image_config(family, request, tmp_path)


@pytest.mark.parametrize("family", FAMILIES)
def test_a_killed_run_resumes_bit_for_bit(family, request, tmp_path):
    config = config_for(family, request, tmp_path)
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    ganpipe("train", "--config", config, "--run-dir", whole)
    kill_after_checkpoint(train_command(config, killed), killed)
    ganpipe("train", "--resume", "--run-dir", killed)
    assert_bitwise_equal(whole, killed, ranks=1)


@pytest.mark.parametrize("family", FAMILIES)
def test_a_killed_two_process_run_resumes_bit_for_bit(family, request, tmp_path):
    config = config_for(family, request, tmp_path)
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    done = run_group(launch("cpu-2proc.yaml", config=config, run=whole), 300, env=cpu_env())
    assert done.returncode == 0, done.stderr[-3000:]
    kill_after_checkpoint(launch("cpu-2proc.yaml", config=config, run=killed), killed, cpu_env())
    resumed = [*launch("cpu-2proc.yaml", config=config, run=killed), "--resume"]
    done = run_group(resumed, 300, env=cpu_env())
    assert done.returncode == 0, done.stderr[-3000:]
    assert_bitwise_equal(whole, killed, ranks=2)
