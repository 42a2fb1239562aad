"""The real slurm/train.sbatch on a real two-node Slurm cluster (tests/slurm_cluster.py): a
2-node data-parallel job runs to completion, and a preempted job checkpoints, requeues itself
and finishes from that checkpoint in the same W&B run."""

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from conftest import SMALL_MLP
from slurm_cluster import SlurmCluster, available

pytestmark = pytest.mark.slow
ROOT = Path(__file__).parents[1]


@pytest.fixture(scope="module")
def cluster():
    why_not = available()
    if why_not:
        if os.environ.get("GANPIPE_REQUIRE_SLURM") == "1":
            pytest.fail(why_not)  # CI installs Slurm: a skip there would hide a broken harness
        pytest.skip(why_not)
    slurm = SlurmCluster()
    slurm.start()
    yield slurm
    slurm.stop()
    shutil.rmtree(slurm.root, ignore_errors=True)


def ring_config(ring, path: Path, steps: int, wandb: bool = False) -> Path:
    model = SMALL_MLP
    train = {"steps": steps, "batch_size": 64, "log_every": 50, "checkpoint_every": 100_000}
    spec = {
        "name": "ring-slurm",
        "data": {"dir": str(ring)},
        "model": model,
        "train": train,
        "eval": {"n_samples": 500},
        "tracking": {"wandb": wandb},
    }
    path.write_text(yaml.safe_dump(spec))
    return path


def submit(cluster: SlurmCluster, config: Path, run: Path, log: Path) -> str:
    env = {
        **cluster.env,
        "PATH": f"{Path(sys.executable).parent}:{cluster.env['PATH']}",  # the project's python
        "RUN_DIR": str(run),
        "OMP_NUM_THREADS": "1",
        "WANDB_MODE": "offline",
    }
    command = ["sbatch", "--parsable", "--nodes=2", f"--output={log}"]
    command += [str(ROOT / "slurm" / "train.sbatch"), str(config)]
    done = subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip().split(";")[0]


def test_a_two_node_job_trains_data_parallel(cluster, ring, tmp_path):
    run, log = tmp_path / "run", tmp_path / "job.out"
    job = submit(cluster, ring_config(ring, tmp_path / "ring.yaml", steps=60), run, log)
    info = cluster.wait_for(job, {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT"}, timeout=300)
    output = log.read_text()
    assert info["JobState"] == "COMPLETED", output[-3000:]
    assert "2 node(s) x 1 process(es)" in output
    assert "global batch 128 (64 x 2 processes x 1 accumulation)" in output
    ranks = [json.loads((run / "ranks" / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert [r["step"] for r in ranks] == [60, 60]
    assert ranks[0]["parameters"] == ranks[1]["parameters"]
    assert not set(ranks[0]["shards_read"]) & set(ranks[1]["shards_read"])


def test_a_preempted_job_checkpoints_requeues_and_resumes(cluster, ring, tmp_path):
    run, log, steps = tmp_path / "run", tmp_path / "job.out", 1000
    config = ring_config(ring, tmp_path / "ring.yaml", steps, wandb=True)
    job = submit(cluster, config, run, log)
    deadline = time.monotonic() + 240
    while not (run / "metrics.jsonl").is_file() or not (run / "metrics.jsonl").read_text():
        assert time.monotonic() < deadline, log.read_text()[-3000:] if log.is_file() else ""
        time.sleep(0.5)
    # What `#SBATCH --signal=B:USR1@300` delivers before the time limit, sent now.
    cluster.run("scancel", "--batch", "--signal=USR1", job)

    info = cluster.wait_for(job, {"COMPLETED", "FAILED", "CANCELLED"}, timeout=400)
    output = log.read_text()
    assert info["JobState"] == "COMPLETED" and info["Restarts"] == "1", output[-4000:]
    stopped = re.search(r"stopped at step (\d+)", output)
    assert stopped, output[-4000:]
    step = int(stopped.group(1))
    assert 0 < step < steps
    assert "job " + job + " (restart 1)" in output
    assert f"steps {step} -> {steps}" in output  # the requeued job resumed from that checkpoint
    ranks = [json.loads((run / "ranks" / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert [r["step"] for r in ranks] == [steps, steps]
    assert ranks[0]["parameters"] == ranks[1]["parameters"]
    run_id = json.loads((run / "run.json").read_text())["run_id"]
    wandb_runs = sorted(p.name for p in (run / "wandb").glob("offline-run-*"))
    assert len(wandb_runs) == 2 and all(name.endswith(run_id) for name in wandb_runs)
