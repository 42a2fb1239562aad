"""A damaged checkpoint or a full disk costs at most the work since the last good checkpoint."""

import os
import subprocess

import pytest
import yaml
from conftest import SMALL_MLP, ganpipe

from pipeline.runs import checkpoint

pytestmark = pytest.mark.slow  # starts training processes


def ring_config(ring, tmp_path, steps: int, keep: int):
    config = tmp_path / "ring.yaml"
    train = {"steps": steps, "batch_size": 64, "checkpoint_every": 10, "keep_checkpoints": keep,
             "eval_every": 10**6, "sample_every": 10**6}  # fmt: skip
    settings = {"data": {"dir": str(ring)}, "model": SMALL_MLP, "train": train,
                "eval": {"n_samples": 500}, "tracking": {"wandb": False}}  # fmt: skip
    config.write_text(yaml.safe_dump(settings))
    return config


def test_resume_skips_a_damaged_checkpoint(ring, tmp_path):
    run = tmp_path / "run"
    ganpipe("train", "--config", ring_config(ring, tmp_path, 40, keep=2), "--run-dir", run)
    newest = checkpoint.latest(run)
    assert newest.name == "step-00000040"
    os.truncate(newest / checkpoint.STATE, 1000)  # as a crash of the storage might leave it

    done = ganpipe("train", "--resume", "--run-dir", run, "train.steps=60")
    assert f"checkpoint {newest} is damaged (state.pt has 1000 bytes" in done.stderr
    assert "steps 30 -> 60" in done.stdout
    assert checkpoint.latest(run).name == "step-00000060"


@pytest.fixture
def small_disk(tmp_path):
    """A tmpfs of a given size mounted at a folder: a disk that really fills up."""
    mounted = []

    def mount(path, size: int):
        path.mkdir(parents=True, exist_ok=True)
        options = f"size={size}" if path not in mounted else f"remount,size={size}"
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)],
                              capture_output=True, text=True)  # fmt: skip
        if done.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here (needs root): {done.stderr.strip()}")
        mounted.append(path)

    yield mount
    for path in set(mounted):
        subprocess.run(["umount", str(path)], check=False)


def test_a_full_disk_keeps_the_previous_checkpoint_and_resume_finishes(ring, tmp_path, small_disk):
    config = ring_config(ring, tmp_path, 30, keep=1)
    sizing = tmp_path / "sizing"
    ganpipe("train", "--config", config, "--run-dir", sizing, "train.steps=10")
    one = sum(f.stat().st_size for f in checkpoint.latest(sizing).iterdir())

    run = tmp_path / "run"
    small_disk(run / "checkpoints", one * 3 // 2)  # room for one checkpoint, not for two
    done = ganpipe("train", "--config", config, "--run-dir", run, check=False)
    assert done.returncode == 2, done.stderr  # a user error: one line saying what to do
    assert "cannot write checkpoint: [Errno 28] No space left on device" in done.stderr
    intact = run / "checkpoints" / "step-00000010"
    assert f"checkpoint at step 20 not written; {intact} is intact" in done.stderr
    assert "the final checkpoint (step 30) could not be written: free disk space" in done.stderr
    assert [p.name for p in (run / "checkpoints").iterdir()] == [intact.name]  # nothing partial
    assert checkpoint.damage(intact) is None

    small_disk(run / "checkpoints", one * 4)  # space freed
    resumed = ganpipe("train", "--resume", "--run-dir", run)
    assert "steps 10 -> 30" in resumed.stdout
    assert checkpoint.latest(run).name == "step-00000030"
