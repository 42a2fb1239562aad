"""`ganpipe bench collapse` end to end on a tiny budget: real runs, samples on disk, a table."""

import json

import numpy as np
import pytest
from conftest import ganpipe

from pipeline.bench import recipes
from pipeline.config import load_config

TINY = [
    "train.steps=30",
    "model.width=16",
    "model.d_width=16",
    "train.log_every=10",
    "rejection.critic_steps=20",  # the best recipe samples through a critic
    "rejection.critic_batch=64",
]


def test_recipes_expand_into_vanilla_best_and_one_ablation_per_component():
    book = recipes.load()
    best = book.recipes["best"]
    assert book.recipes["vanilla"] == [] and len(best) >= 2
    ablations = {name for name in book.recipes if name.startswith("best-minus-")}
    assert {f"best-minus-{c}" for c in best} == ablations
    assert book.recipes["vanilla-guarded"] == ["guard"]  # a named recipe of recipes.yaml
    guard = dict(f.split("=", 1) for f in book.overrides("vanilla-guarded", "grid"))
    assert guard["collapse_guard.interventions"] == '["regularize.r1=0.2"]'  # the grid's own
    for component in best:
        assert component not in book.recipes[f"best-minus-{component}"]
    flags = book.overrides("best", "ring")
    assert all("=" in f for f in flags) and any(f.startswith("regularize.r1=") for f in flags)


@pytest.mark.slow
def test_bench_collapse_writes_samples_results_and_the_table(tmp_path):
    out = tmp_path / "bench"
    args = ["bench", "collapse", "--suite", "ring", "--seeds", "2", "--jobs", "2"]
    done = ganpipe(*args, "--recipes", "vanilla,best", "--out", out, *TINY)
    for recipe in ("vanilla", "best"):
        for seed in (0, 1):
            samples = np.load(out / "ring" / recipe / f"seed{seed}.npz")["samples"]
            assert samples.shape == (2500, 2)
    results = json.loads((out / "results.json").read_text())
    assert len(results["runs"]) == 4 and {e["seeds"] for e in results["summary"]} == {2}
    for run in results["runs"]:  # the best recipe rejects with a critic; vanilla does not
        assert (run["acceptance"] is None) == (run["recipe"] == "vanilla")
        assert run["acceptance"] is None or 0 < run["acceptance"] <= 1
    best = next(e for e in results["summary"] if e["recipe"] == "best")
    assert 0 <= best["modes"][0] <= 8 and best["modes"][1] is not None  # mean, standard error
    table = (out / "collapse.md").read_text()
    assert "| PacGAN2 (PacGAN Table 1) | 7.9 |" in table and "| **best (ours)** |" in table
    assert table in done.stdout
    again = ganpipe(*args, "--recipes", "vanilla,best", "--out", out, *TINY)
    assert "seed 0:" not in again.stdout  # finished seeds are kept, not retrained
    bad = ganpipe("bench", "collapse", "--recipes", "best-minus-magic", check=False)
    assert bad.returncode == 2 and "--recipes: unknown best-minus-magic" in bad.stderr


def test_an_ablation_that_changes_nothing_on_a_suite_is_skipped():
    book = recipes.load()
    assert not book.applies("best-minus-spectral_norm", "ring")
    assert book.applies("best-minus-spectral_norm", "stacked")
    assert book.applies("best-minus-r1", "ring")


@pytest.mark.parametrize("suite", ["ring", "grid"])
def test_the_standalone_config_is_the_suites_best_recipe(suite):
    book = recipes.load()
    bench = load_config(f"configs/collapse/{suite}.yaml", book.overrides("best", suite))
    standalone = load_config(f"configs/{suite}.yaml")
    for section in ("model", "train", "regularize", "rejection"):
        ours, theirs = getattr(standalone, section), getattr(bench, section)
        settings = {k: v for k, v in vars(ours).items() if not k.endswith("_every")}
        assert settings == {k: v for k, v in vars(theirs).items() if not k.endswith("_every")}
