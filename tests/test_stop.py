"""Asked to stop (a signal, or the STOP file a batch script drops), training checkpoints at
the next step boundary and exits 75; `--resume` then finishes the run."""

import json
import signal
import subprocess
import sys
import time

import pytest
import yaml
from conftest import SMALL_MLP, ganpipe

from pipeline.runs import checkpoint
from pipeline.train.stop import EXIT_STOPPED, STOP_FILE

pytestmark = pytest.mark.slow  # starts training processes

STEPS = 100_000  # far more than the test lets it run: only a stop ends it early


def ring_config(ring, tmp_path, steps=STEPS):
    config = tmp_path / "ring.yaml"
    model = SMALL_MLP
    train = {"steps": steps, "batch_size": 64, "log_every": 20, "checkpoint_every": 100_000}
    config.write_text(
        yaml.safe_dump(
            {"data": {"dir": str(ring)}, "model": model, "train": train, "eval": {"n_samples": 500}}
        )
    )
    return config


def start_training(config, run) -> subprocess.Popen:
    command = [sys.executable, "-m", "pipeline.cli", "train", "--config", config, "--run-dir", run]
    proc = subprocess.Popen(list(map(str, command)), stdout=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not (run / "metrics.jsonl").is_file() or not (run / "metrics.jsonl").read_text():
        assert proc.poll() is None and time.monotonic() < deadline, "training did not start"
        time.sleep(0.2)
    return proc


@pytest.mark.parametrize("how", ["SIGUSR1", "SIGTERM", "file"])
def test_a_stop_request_checkpoints_and_resume_finishes(how, ring, tmp_path):
    run = tmp_path / "run"
    proc = start_training(ring_config(ring, tmp_path), run)
    if how == "file":
        (run / STOP_FILE).touch()
    else:
        proc.send_signal(getattr(signal, how))
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == EXIT_STOPPED, out

    latest = checkpoint.latest(run)
    stopped_at = checkpoint.load(latest / checkpoint.STATE)["step"]
    assert 0 < stopped_at < STEPS and stopped_at % 10 == 0
    assert f"stopped at step {stopped_at}" in out
    assert not (run / STOP_FILE).exists()  # served: a requeued job must not stop again

    # Resume to a near end: the request is gone, so the run finishes.
    done = ganpipe("train", "--resume", "--run-dir", run, "train.steps=" + str(stopped_at + 40))
    assert f"steps {stopped_at} -> {stopped_at + 40}" in done.stdout
    rank = json.loads((run / "ranks" / "rank0.json").read_text())
    assert rank["step"] == stopped_at + 40
