"""A real 2-process `accelerate launch` on CPU (gloo): the data-parallel contract."""

import json
import os
import socket
import sys
from pathlib import Path

import pytest
import yaml
from conftest import run_group

pytestmark = pytest.mark.slow
LAUNCH_CONFIGS = Path(__file__).parents[1] / "configs" / "accelerate"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_processes_read_different_shards_and_agree(digits16, tmp_path):
    config = tmp_path / "ddp.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "data": {"dir": str(digits16)},
                "model": {"z_dim": 16, "width": 8, "d_width": 8, "pack": 2},
                # Toolbox parts with cross-process state or their own D passes.
                "regularize": {"r1": 0.1, "r1_every": 2, "lecam": 0.1, "mode_seeking": 0.1},
                "d_augment": {"ada_target": 0.6, "ada_interval": 2, "ada_images": 1000},
                "train": {
                    "steps": 12,
                    "batch_size": 16,
                    "grad_accum": 2,
                    "checkpoint_every": 6,
                    "eval_every": 12,
                    "sample_every": 12,
                },
                "eval": {"n_samples_during_training": 100},
            }
        )
    )
    run = tmp_path / "run"
    accelerate = Path(sys.executable).with_name("accelerate")
    command = [
        str(accelerate),
        "launch",
        "--config_file",
        str(LAUNCH_CONFIGS / "cpu-2proc.yaml"),
        "--main_process_port",
        str(free_port()),
        "-m",
        "pipeline.train",
        "--config",
        str(config),
        "--run-dir",
        str(run),
    ]
    env = {**os.environ, "ACCELERATE_USE_CPU": "1", "OMP_NUM_THREADS": "1"}
    done = run_group(command, timeout=300, env=env)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]

    ranks = [json.loads((run / "ranks" / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert [r["processes"] for r in ranks] == [2, 2]
    shards = [set(r["shards_read"]) for r in ranks]
    assert shards[0] and shards[1] and not shards[0] & shards[1]
    assert ranks[0]["parameters"] == ranks[1]["parameters"]  # gradients were all-reduced
    assert ranks[0]["toolbox"] == ranks[1]["toolbox"]  # ADA's p and LeCam's averages agree
    assert set(ranks[0]["toolbox"]) >= {"augment.p", "lecam.means"}
    assert "global batch 64 (16 x 2 processes x 2 accumulation)" in done.stdout
    step = run / "checkpoints" / "step-00000012"
    assert sorted(p.name for p in step.iterdir()) == ["rng-rank0.pt", "rng-rank1.pt", "state.pt"]
