"""`ganpipe bench roofline`: the step's operators counted on the meta device, each at its
roofline."""

import json

import pytest
from conftest import ganpipe

from pipeline.bench.plain_loop import PlainLoop
from pipeline.bench.throughput import prepared_data
from pipeline.config import load_config
from pipeline.data.reader import dataset_for

pytestmark = pytest.mark.slow  # starts training processes


def roofline(tmp_path, *args):
    out = tmp_path / "roof"
    done = ganpipe("bench", "roofline", "--out", out, *args)
    (row,) = json.loads((out / "roofline.json").read_text())["configs"]
    return row, done.stdout


def test_the_step_has_the_flops_the_flop_counter_counts(tmp_path):
    row, printed = roofline(tmp_path, "--configs", "mlp-ring")
    config = load_config(
        "configs/ring.yaml", [f"data.dir={prepared_data(tmp_path / 'roof', 'mog-ring')}"]
    )
    counted = PlainLoop(config, dataset_for(config.data)).flops_per_image()
    assert row["gflop_per_image"] * 1e9 == pytest.approx(counted, rel=1e-6)
    assert row["bound_ms"] == pytest.approx(sum(kind["ms"] for kind in row["kinds"].values()))
    assert 0 < row["mfu_ceiling"] <= row["mfu_ceiling_fused"] <= 1
    assert "MFU at most" in printed and "| conv / matmul |" in printed


def test_with_unbounded_memory_only_the_flops_count(tmp_path):
    row, _ = roofline(tmp_path, "--configs", "mlp-ring", "--bandwidth-tbs", "1e12")
    assert row["mfu_ceiling"] == pytest.approx(1.0, rel=1e-6)


def test_attention_counts_as_the_fused_kernel(tmp_path):
    row, _ = roofline(tmp_path, "--configs", "biggan-32", "model.attention=16",
                      "train.mixed_precision=bf16")  # fmt: skip
    assert row["dtype"] == "bf16" and row["kinds"]["attention"]["operators"] > 0
    assert "aten::bmm" not in row["top_ops_ms"]  # no unfused query-key products
