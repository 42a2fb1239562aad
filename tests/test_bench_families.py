import json

import pytest
from conftest import ganpipe

pytestmark = pytest.mark.slow  # starts training processes


def test_bench_families_prints_and_writes_the_table(tmp_path):
    out = tmp_path / "bench"
    tiny = [
        "train.steps=2",
        "train.eval_every=2",
        "train.checkpoint_every=2",
        "eval.n_samples=100",
        "eval.n_samples_during_training=100",
        "eval.grid_size=10",
        "model.width=4",
        "model.d_width=4",
    ]
    done = ganpipe("bench", "families", "--out", out, "--families", "vaegan", *tiny)
    rows = json.loads((out / "families.json").read_text())
    assert [r["family"] for r in rows] == ["vaegan"] and rows[0]["steps"] == 2
    assert rows[0]["fid"] > 0 and rows[0]["train_minutes"] > 0
    assert "| vaegan | `configs/vaegan-digits.yaml` | 2 |" in done.stdout
    assert (out / "families.md").read_text() in done.stdout
    bad = ganpipe("bench", "families", "--families", "stylegan", check=False)
    assert bad.returncode == 2 and "--families: unknown stylegan" in bad.stderr
