"""NaN and infinity: an update that carries them is skipped and counted; a run that keeps
making them goes back to its newest checkpoint with lower learning rates, then gives up."""

import json

import numpy as np
import pytest
import torch
import yaml
from conftest import SMALL_MLP, ganpipe

from pipeline.config import NonFiniteConfig
from pipeline.data.shards import write
from pipeline.data.sources import Source, Split, mixture
from pipeline.errors import UserError
from pipeline.runs import checkpoint
from pipeline.train.nonfinite import NonFiniteGuard

SHARD = 640  # 10 batches of 64


@pytest.fixture(scope="module")
def ring_with_a_nan_shard(tmp_path_factory):
    """The ring in 7 shards, one of them all NaN points: 10 bad batches in a row per pass."""
    ring = mixture("mog-ring")
    rng = np.random.default_rng(0)
    points, labels = ring.sample(7 * SHARD, rng)
    points[3 * SHARD : 4 * SHARD] = np.nan
    test = Split(*ring.sample(500, rng))
    info = {"mixture": {"means": ring.means.tolist(), "std": ring.std}}
    source = Source(
        "mog-ring", "points", [2], 8, {"train": Split(points, labels), "test": test}, info
    )
    out = tmp_path_factory.mktemp("nan-ring")
    write(source, out, shard_size=SHARD)
    return out


def config_file(data, tmp_path, **nonfinite):
    config = tmp_path / "config.yaml"
    settings = {
        "data": {"dir": str(data), "shuffle_buffer": 0},
        "model": SMALL_MLP,
        "train": {"steps": 80, "batch_size": 64, "log_every": 10, "checkpoint_every": 20,
                  "eval_every": 10**6, "sample_every": 10**6},
        "nonfinite": nonfinite,
        "eval": {"n_samples": 500},
        "tracking": {"wandb": False},
    }  # fmt: skip
    config.write_text(yaml.safe_dump(settings))
    return config


def last_log(run) -> dict:
    lines = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return [entry for entry in lines if "nonfinite/skipped" in entry][-1]


def all_finite(run) -> bool:
    state = checkpoint.load(checkpoint.latest(run) / checkpoint.STATE)
    return all(
        torch.isfinite(t).all() for model in ("G", "D", "G_ema") for t in state[model].values()
    )


@pytest.mark.slow
@pytest.mark.parametrize("precision", ["no", "bf16"])
def test_updates_on_nan_batches_are_skipped_and_counted(ring_with_a_nan_shard, tmp_path, precision):
    run = tmp_path / "run"
    config = config_file(ring_with_a_nan_shard, tmp_path, restore_after=100)
    # LeCam keeps moving averages of D's outputs: a skipped update must not leave NaNs there.
    precision = f"train.mixed_precision={precision}"
    ganpipe("train", "--config", config, "--run-dir", run, precision, "regularize.lecam=0.1")
    logged = last_log(run)
    assert logged["step"] == 80 and logged["nonfinite/restores"] == 0
    assert logged["nonfinite/skipped"] in (10, 20)  # the bad shard once (or twice: next pass)
    assert all_finite(run)


@pytest.mark.slow
def test_a_diverged_run_goes_back_to_its_checkpoint_with_lower_learning_rates(ring, tmp_path):
    run = tmp_path / "run"
    config = config_file(ring, tmp_path)
    ganpipe("train", "--config", config, "--run-dir", run, "train.steps=20")
    # Resumed with a learning rate that blows D up at once: every later update is non-finite
    # until the checkpoint comes back with the rate times 1e-33, i.e. 1e-3.
    done = ganpipe("train", "--resume", "--run-dir", run, "train.steps=60", "train.lr_d=1e30",
                   "nonfinite.restore_after=3", "nonfinite.lr_factor=1e-33")  # fmt: skip
    assert "alert: non-finite training restored: 3 iterations in a row" in done.stderr
    assert "restored the checkpoint of step 20, learning rates now x1e-33" in done.stderr
    logged = last_log(run)
    assert logged["step"] == 60 and logged["nonfinite/restores"] == 1
    assert logged["lr_scale"] == pytest.approx(1e-33)
    assert all_finite(run)
    saved = checkpoint.load(checkpoint.latest(run) / checkpoint.STATE)
    assert saved["lr_scale"] == pytest.approx(1e-33)  # a resumed run keeps the lower rates


@pytest.mark.slow
def test_a_run_that_keeps_diverging_stops_with_one_clear_error(ring, tmp_path):
    run = tmp_path / "run"
    config = config_file(ring, tmp_path, restore_after=3, max_restores=1)
    ganpipe("train", "--config", config, "--run-dir", run, "train.steps=20")
    done = ganpipe("train", "--resume", "--run-dir", run, "train.steps=60", "train.lr_d=1e30",
                   check=False)  # fmt: skip
    assert done.returncode == 2
    assert "kept coming back after 1 restores (nonfinite.max_restores)" in done.stderr


def test_the_guard_counts_in_a_row_and_lowers_the_rates():
    guard = NonFiniteGuard(NonFiniteConfig(restore_after=2, lr_factor=0.5, max_restores=1))
    assert [guard.record([ok]) for ok in (False, True, False, False)] == [False, False, False, True]
    assert guard.restored() == 0.5 and guard.in_a_row == 0 and guard.skipped == 3
    with pytest.raises(UserError, match="after 1 restores"):
        guard.restored()
