"""A real 2-process `accelerate launch` on CPU (gloo): the data-parallel contract."""

import json
import os
import socket
import sys
from concurrent.futures import ThreadPoolExecutor
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


def launch(launch_config: str, *flags: str, config: Path, run: Path) -> list[str]:
    """`accelerate launch` of `pipeline.train` with one of configs/accelerate/."""
    accelerate = str(Path(sys.executable).with_name("accelerate"))
    configs = ["--config", str(config), "--run-dir", str(run)]
    return [accelerate, "launch", "--config_file", str(LAUNCH_CONFIGS / launch_config), *flags,
            "-m", "pipeline.train", *configs]  # fmt: skip


# gloo on CPU: accelerate has no multi-process CPU launcher of its own.
CPU_ENV = {**os.environ, "ACCELERATE_USE_CPU": "1", "OMP_NUM_THREADS": "1"}


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
                    "sync_bn": True,  # G's batch norm over both processes' batches
                    "checkpoint_every": 6,
                    "eval_every": 12,
                    "sample_every": 12,
                },
                "eval": {"n_samples_during_training": 100},
            }
        )
    )
    run = tmp_path / "run"
    port = ("--main_process_port", str(free_port()))
    done = run_group(launch("cpu-2proc.yaml", *port, config=config, run=run), 300, env=CPU_ENV)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]

    ranks = [json.loads((run / "ranks" / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert [r["processes"] for r in ranks] == [2, 2]
    shards = [set(r["shards_read"]) for r in ranks]
    assert shards[0] and shards[1] and not shards[0] & shards[1]
    assert ranks[0]["parameters"] == ranks[1]["parameters"]  # gradients were all-reduced
    assert ranks[0]["buffers"] == ranks[1]["buffers"]  # batch norm saw the global batch
    assert ranks[0]["toolbox"] == ranks[1]["toolbox"]  # ADA's p and LeCam's averages agree
    assert set(ranks[0]["toolbox"]) >= {"augment.p", "lecam.means"}
    assert "global batch 64 (16 x 2 processes x 2 accumulation)" in done.stdout
    step = run / "checkpoints" / "step-00000012"
    assert sorted(p.name for p in step.iterdir()) == ["rng-rank0.pt", "rng-rank1.pt", "state.pt"]


def test_two_machines_train_together(ring, tmp_path):
    """Two launches on this host as machines 0 and 1 of a 2-machine job (one process each):
    the multi-node launch config, as slurm/train.sbatch uses it on each node."""
    config = tmp_path / "ring.yaml"
    model = {"family": "mlp", "width": 32, "d_width": 32, "depth": 2, "d_depth": 2}
    train = {"steps": 40, "batch_size": 64, "log_every": 20}
    config.write_text(yaml.safe_dump({"data": {"dir": str(ring)}, "model": model, "train": train}))
    run, port = tmp_path / "run", str(free_port())
    machines = []
    for machine in ("0", "1"):
        flags = ("--num_machines", "2", "--num_processes", "2", "--machine_rank", machine,
                 "--main_process_ip", "127.0.0.1", "--main_process_port", port)  # fmt: skip
        command = launch("multi-node.yaml", *flags, config=config, run=run)
        machines.append(ThreadPoolExecutor(1).submit(run_group, command, 300, env=CPU_ENV))
    for done in (m.result() for m in machines):
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    ranks = [json.loads((run / "ranks" / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert [r["processes"] for r in ranks] == [2, 2] and [r["step"] for r in ranks] == [40, 40]
    assert ranks[0]["parameters"] == ranks[1]["parameters"]
    assert not set(ranks[0]["shards_read"]) & set(ranks[1]["shards_read"])
