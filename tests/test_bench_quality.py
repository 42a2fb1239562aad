"""Compute budgets (`train.budget_minutes`) and `ganpipe bench quality`: budgets count CPU time
per thread, checkpoint as they pass and survive a resume; the bench measures the pipeline and
the classic DCGAN at the same budgets and writes a table, JSON and a plot, and resumes."""

import json
import time

import pytest
import torch
from conftest import ganpipe
from PIL import Image

from pipeline.bench import classic_dcgan
from pipeline.runs import checkpoint
from pipeline.train.budget import CHECK_EVERY, CpuBudget


def burn(seconds: float) -> None:
    """Spend CPU time in this process."""
    end = time.process_time() + seconds
    while time.process_time() < end:
        pass


def test_a_budget_passes_once_when_the_cpu_time_per_thread_reaches_it():
    threads = torch.get_num_threads()
    budget = CpuBudget([0.2 / 60, 0.1 / 60])  # 0.1 and 0.2 CPU seconds per thread
    assert budget.marks == [0.1 / 60, 0.2 / 60] and not budget.exhausted
    assert budget.passed(CHECK_EVERY) is None
    burn(0.1 * threads)
    assert budget.passed(CHECK_EVERY + 1) is None  # looked at every CHECK_EVERY steps only
    assert budget.passed(2 * CHECK_EVERY) == 0.1 / 60
    assert budget.passed(3 * CHECK_EVERY) is None  # once each
    burn(0.1 * threads)
    assert budget.passed(4 * CHECK_EVERY) == 0.2 / 60 and budget.exhausted


def test_time_waiting_does_not_count_and_a_resumed_budget_goes_on():
    budget = CpuBudget([1.0])
    time.sleep(0.3)
    assert budget.minutes() < 0.1 / 60  # asleep: no CPU time
    state = {**budget.state(), "budget_minutes": 0.75}
    resumed = CpuBudget([0.5, 1.0], state)
    assert resumed.passed_marks == [0.5] and resumed.minutes() >= 0.75
    assert resumed.state()["budget_wall_seconds"] >= 0.3


def test_the_classic_baseline_is_the_examples_dcgan():
    G, D = classic_dcgan.generator(16), classic_dcgan.discriminator(16)
    images = G(torch.randn(5, classic_dcgan.Z_DIM))
    assert images.shape == (5, 1, 32, 32) and images.abs().max() <= 1
    assert D(images).shape == (5,)
    kinds = {type(m).__name__ for m in [*G.modules(), *D.modules()]}
    assert {"ConvTranspose2d", "BatchNorm2d", "Tanh", "LeakyReLU"} <= kinds
    assert "Linear" not in kinds  # all-convolutional


@pytest.mark.slow
def test_a_run_with_budgets_checkpoints_at_each_and_ends_at_the_last(digits16, tmp_path):
    run = tmp_path / "run"
    settings = [f"data.dir={digits16}", "model.width=4", "model.d_width=4", "train.steps=100000",
                "train.checkpoint_every=100000", "train.eval_every=100000",
                "train.sample_every=100000", "tracking.wandb=false",
                "train.budget_minutes=[0.02, 0.04]", "train.keep_checkpoints=10"]  # fmt: skip
    ganpipe("train", "--config", "configs/quickstart.yaml", "--run-dir", run, *settings)
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    marks = [r for r in records if "budget/minutes" in r]
    assert [m["budget/minutes"] for m in marks] == [0.02, 0.04]
    assert all(m["budget/cpu_minutes"] >= m["budget/minutes"] for m in marks)
    steps = [m["step"] for m in marks]
    assert [p.name for p in checkpoint.published(run)] == [f"step-{s:08d}" for s in steps]
    state = checkpoint.load(checkpoint.latest(run) / checkpoint.STATE)
    assert state["step"] == steps[-1] < 100000 and state["budget_minutes"] >= 0.04
    bad = ganpipe("train", "--config", "configs/quickstart.yaml", "--run-dir", tmp_path / "x",
                  "train.budget_minutes=[0]", check=False)  # fmt: skip
    assert bad.returncode == 2 and "train.budget_minutes" in bad.stderr


@pytest.mark.slow
def test_bench_quality_measures_pipeline_and_baseline_at_each_budget_and_resumes(tmp_path):
    out = tmp_path / "bench"
    tiny = ["model.width=4", "model.d_width=4", "train.sample_every=100000",
            "data.shape=[1,16,16]"]  # fmt: skip
    args = ["bench", "quality", "--out", out, "--entries", "quickstart,classic-16", "--budgets",
            "0.02,0.05", "--seeds", "2", "--n", "200", "--threads", "1", *tiny]  # fmt: skip
    done = ganpipe(*args)
    # The digits are built at each entry's resolution: the baseline's architecture is 32 px.
    assert sorted(p.name for p in (out / "data").iterdir()) == ["digits-16", "digits-32"]
    result = json.loads((out / "results.json").read_text())
    assert result["budgets"] == [0.02, 0.05] and len(result["records"]) == 4
    for record in result["records"]:
        assert [p["budget"] for p in record["points"]] == [0.02, 0.05]
        steps = [p["step"] for p in record["points"]]
        assert 0 < steps[0] < steps[1]  # the later budget trained longer
        for p in record["points"]:
            assert p["cpu_minutes"] >= p["budget"] and p["fid"] > 0 and p["fid_floor"] > 0
            assert 0 <= p["precision"] <= 1 and 0 <= p["recall"] <= 1
    rows = {(r["entry"], r["budget"]): r for r in result["summary"]}
    assert set(rows) == {(e, b) for e in ("quickstart", "classic-16") for b in (0.02, 0.05)}
    assert all(r["seeds"] == 2 and r["fid_ratio_se"] >= 0 for r in rows.values())
    assert "| quickstart | " in done.stdout and "| classic-16 | " in done.stdout
    assert (out / "quality.md").read_text() in done.stdout
    with Image.open(out / "quality.png") as picture:
        assert picture.size[0] > 300
    # A second call finds every seed finished: nothing retrains, the same table comes back.
    stamps = {p: p.stat().st_mtime for p in out.glob("*/seed*.json")}
    again = ganpipe(*args)
    assert {p: p.stat().st_mtime for p in out.glob("*/seed*.json")} == stamps
    assert (out / "quality.md").read_text() in again.stdout
    bad = ganpipe("bench", "quality", "--entries", "stylegan", check=False)
    assert bad.returncode == 2 and "--entries: unknown stylegan" in bad.stderr
