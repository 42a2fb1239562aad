"""Profiling: a run's `profile` section writes a trace and a breakdown of its steps; `ganpipe
bench profile` sets the pipeline beside the plain loop."""

import gzip
import json

import pytest
import torch
from conftest import SMALL_MLP, ganpipe

from pipeline.train.profiling import OTHER, ProfiledSteps, kind_of

MODEL = [f"model.{key}={value}" for key, value in SMALL_MLP.items()]


@pytest.mark.parametrize(
    ("op", "kind"),
    [
        ("aten::convolution_backward", "conv / matmul"),
        ("aten::addmm", "conv / matmul"),
        ("aten::_softmax", "attention"),
        ("aten::_scaled_dot_product_flash_attention_for_cpu", "attention"),
        ("aten::native_batch_norm", "normalization"),
        ("aten::_fused_adam_", "optimizer / EMA"),
        ("aten::_foreach_lerp_", "optimizer / EMA"),
        ("aten::mv", "conv / matmul"),
        ("aten::copy_", "copy / cast"),
        ("aten::cat", "copy / cast"),
        ("nccl:all_reduce", "communication"),
        ("aten::scatter_add_", OTHER),
        ("aten::leaky_relu", OTHER),
    ],
)
def test_operators_are_sorted_into_kinds_of_work(op, kind):
    assert kind_of(op) == kind


def test_a_window_counts_each_operator_once():
    a, b = torch.randn(256, 256), torch.randn(256, 256)
    window = ProfiledSteps("cpu")
    window.start()
    for _ in range(4):
        torch.relu(a @ b)
    summary = window.stop(steps=2)
    assert summary["steps"] == 2 and summary["time"] == "cpu operators"
    kinds = summary["kinds_ms"]
    assert kinds["conv / matmul"] > kinds[OTHER] > 0
    assert summary["busy_ms"] == pytest.approx(sum(kinds.values()))
    assert summary["busy_ms"] <= summary["wall_ms"] and 0 < summary["busy_share"] <= 1
    matmul = next(row for row in summary["top_ops"] if row["op"] == "aten::mm")
    assert matmul["calls"] == 2  # per step


def profiled_run(ring, run, *flags):
    return ganpipe("train", "--run-dir", run, f"data.dir={ring}", *MODEL, "train.eval_every=100",
                   "train.log_every=2", "tracking.wandb=false", *flags)  # fmt: skip


@pytest.mark.slow
def test_a_run_profiles_the_steps_it_is_told(ring, tmp_path):
    done = profiled_run(ring, tmp_path / "run", "train.steps=8", "profile.start=2",
                        "profile.steps=4")  # fmt: skip
    assert f"profile of steps 2-6 in {tmp_path / 'run' / 'profile'}" in done.stdout
    summary = json.loads((tmp_path / "run" / "profile" / "summary-rank0.json").read_text())
    assert (summary["from_step"], summary["to_step"], summary["steps"]) == (2, 6, 4)
    assert summary["kinds_ms"]["optimizer / EMA"] > 0 and summary["wall_ms"] > 0
    with gzip.open(tmp_path / "run" / "profile" / "trace-rank0.json.gz", "rt") as trace:
        names = {event.get("name") for event in json.load(trace)["traceEvents"]}
    assert "aten::_fused_adam_" in names


@pytest.mark.slow
def test_a_run_that_ends_inside_its_window_keeps_the_steps_profiled(ring, tmp_path):
    profiled_run(ring, tmp_path / "run", "train.steps=5", "profile.start=2", "profile.steps=10")
    summary = json.loads((tmp_path / "run" / "profile" / "summary-rank0.json").read_text())
    assert (summary["from_step"], summary["to_step"], summary["steps"]) == (2, 5, 3)


@pytest.mark.slow
def test_no_profile_unless_asked(ring, tmp_path):
    profiled_run(ring, tmp_path / "run", "train.steps=3")
    assert not (tmp_path / "run" / "profile").exists()


@pytest.mark.slow
def test_profile_bench_sets_the_pipeline_beside_the_plain_loop(tmp_path):
    out = tmp_path / "prof"
    args = ("bench", "profile", "--configs", "mlp-ring", "--steps", "5", "--warmup", "2")
    done = ganpipe(*args, "--out", out, "train.batch_size=64")
    (row,) = json.loads((out / "profile.json").read_text())["configs"]
    assert row["config"] == "mlp-ring"
    for side in ("pipeline", "plain"):
        assert row[side]["steps"] == 5 and row[side]["kinds_ms"]["conv / matmul"] > 0, side
        assert (out / f"mlp-ring-{side}-trace.json.gz").stat().st_size > 0
    assert "| wall |" in done.stdout and "| conv / matmul |" in done.stdout


@pytest.mark.slow
def test_a_run_ending_where_its_window_opens_writes_no_profile(ring, tmp_path):
    profiled_run(ring, tmp_path / "run", "train.steps=3", "profile.start=3", "profile.steps=2")
    assert not (tmp_path / "run" / "profile").exists()
