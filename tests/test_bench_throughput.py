"""`ganpipe bench throughput`: a short run gives a well-formed table and JSON."""

import json

import pytest
from conftest import ganpipe

pytestmark = pytest.mark.slow  # starts training processes


def test_throughput_bench_measures_the_pipeline_beside_the_plain_loop(tmp_path):
    out = tmp_path / "tp"
    args = ("bench", "throughput", "--configs", "mlp-ring", "--steps", "20", "--out", out)
    done = ganpipe(*args, "train.batch_size=64")
    result = json.loads((out / "throughput.json").read_text())
    (row,) = result["configs"]
    assert row["config"] == "mlp-ring" and row["batch_size"] == 64 and row["dtype"] == "fp32"
    for key in ("pipeline_img_s", "baseline_img_s", "eval_samples_s", "peak_memory_gb"):
        assert row[key] > 0, key
    assert row["time_ratio"] == row["baseline_img_s"] / row["pipeline_img_s"]
    assert set(row["loader_img_s"]) == {"0", "1", "2"} and min(row["loader_img_s"].values()) > 0
    assert row["loader_over_step"] == max(row["loader_img_s"].values()) / row["pipeline_img_s"]
    assert "| mlp-ring | 64 x 1 |" in done.stdout and "time_ratio" in done.stdout
    assert result["inception_img_s"] > 0 and "InceptionV3 features:" in done.stdout
