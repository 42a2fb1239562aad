"""Shared fixtures: small datasets built once per session, a private cache, offline W&B."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.data.shards import build

os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")


@pytest.fixture(autouse=True)
def seeded():
    """Every test starts from the same random state: a failure reproduces."""
    import random

    import numpy as np
    import torch

    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)


@pytest.fixture(scope="session", autouse=True)
def private_cache(tmp_path_factory):
    """The digit classifier is trained once per test session, in a cache of its own."""
    os.environ["GANPIPE_CACHE"] = str(tmp_path_factory.mktemp("cache"))


@pytest.fixture(scope="session")
def digits16(tmp_path_factory) -> Path:
    """The bundled digits at 16 px in 8 training shards (enough for 2 ranks x 2 workers)."""
    out = tmp_path_factory.mktemp("digits16")
    build("digits", out, resolution=16, shard_size=180)
    return out


# A small MLP pair for the 2D mixtures: runs that test the machinery, not the model.
SMALL_MLP = {"family": "mlp", "width": 32, "d_width": 32, "depth": 2, "d_depth": 2}


@pytest.fixture(scope="session")
def ring(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("ring")
    build("mog-ring", out, shard_size=1000, n_train=8000, n_test=500)
    return out


LAUNCH_CONFIGS = Path(__file__).parents[1] / "configs" / "accelerate"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_env() -> dict[str, str]:
    """gloo on CPU: accelerate has no multi-process CPU launcher of its own. (Read when called:
    the session's fixtures set the cache folder the processes must share.)"""
    return {**os.environ, "ACCELERATE_USE_CPU": "1", "OMP_NUM_THREADS": "1"}


def ganpipe(*args, check: bool = True, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run the real `ganpipe` command line in a fresh process."""
    command = [sys.executable, "-m", "pipeline.cli", *map(str, args)]
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    if check and done.returncode != 0:
        raise AssertionError(f"ganpipe {args} failed:\n{done.stdout}\n{done.stderr}")
    return done


def run_group(command: list[str], timeout: float, **kwargs) -> subprocess.CompletedProcess:
    """Run a launcher and everything it spawns in its own process group; on timeout the whole
    group is killed, so no orphaned training process outlives the test."""
    with subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        **kwargs,
    ) as proc:
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            out, err = proc.communicate()
            message = f"timed out after {timeout} s:\n{out[-3000:]}\n{err[-3000:]}"
            raise AssertionError(message) from None
    return subprocess.CompletedProcess(command, proc.returncode, out, err)


@pytest.fixture(scope="session")
def digits32(tmp_path_factory) -> Path:
    """The bundled digits at 32 px, the smallest resolution BigGAN's plans start from."""
    out = tmp_path_factory.mktemp("digits32")
    build("digits", out, resolution=32, shard_size=400)
    return out
