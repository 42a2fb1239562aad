"""The collapse guard: its monitors on hand-made sets, and a real run that it rolls back and
treats (the benchmark figures, guarded against unguarded, are in the README)."""

import json

import pytest
import torch
import yaml
from conftest import SMALL_MLP, ganpipe

from pipeline.config import intervention_overrides, load_config
from pipeline.errors import UserError
from pipeline.metrics.bins import cell_shares, different_bins, kmeans
from pipeline.metrics.evaluate import normalised_entropy
from pipeline.runs import checkpoint


def grid_points(n, modes, generator):
    means = torch.tensor([[i, j] for i in range(5) for j in range(5)], dtype=torch.float64) * 2
    picked = torch.randint(modes, (n,), generator=generator)
    return means[picked] + 0.05 * torch.randn(n, 2, generator=generator, dtype=torch.float64)


def test_different_bins_are_few_for_the_same_distribution_and_most_for_a_collapsed_one():
    draws = torch.Generator().manual_seed(0)
    real = grid_points(4000, 25, draws)
    centres = kmeans(real, 100, seed=0)
    shares = cell_shares(real, centres)
    assert shares.sum().item() == pytest.approx(1.0) and (shares > 0).all()  # no empty cell
    same = different_bins(shares, len(real), grid_points(2000, 25, draws), centres)
    collapsed = different_bins(shares, len(real), grid_points(2000, 5, draws), centres)
    assert same < 0.15  # about alpha = 5% of the cells by chance
    assert collapsed > 0.75  # 20 of 25 modes empty, the other 5 crowded
    assert torch.equal(kmeans(real, 100, seed=0), centres)  # seeded: the same cells again


def test_class_entropy_is_one_when_uniform_and_falls_with_lost_classes():
    assert normalised_entropy(torch.arange(1000) % 25, 25) == pytest.approx(1.0)
    assert normalised_entropy(torch.arange(1000) % 5, 25) == pytest.approx(0.5)  # log 5/log 25
    assert normalised_entropy(torch.zeros(10), 25) == 0.0


def test_interventions_are_checked_when_the_config_is_read():
    ok = load_config(None, ["collapse_guard.interventions=[regularize.r1=1.0, train.lr_d=1e-4]"])
    assert ok.collapse_guard.interventions == ["regularize.r1=1.0", "train.lr_d=1e-4"]
    with pytest.raises(UserError, match="models and data cannot change"):
        load_config(None, ["collapse_guard.interventions=[model.pack=2]"])
    with pytest.raises(UserError, match=r"collapse_guard.interventions: regularize.r1: -1.0"):
        load_config(None, ["collapse_guard.interventions=[regularize.r1=-1]"])


def test_an_intervention_may_apply_several_overrides_each_checked():
    joined = '["regularize.lecam=0.3; train.ema_decay=0.999", "train.lr_d=1e-4"]'
    items = load_config(None, [f"collapse_guard.interventions={joined}"]).collapse_guard
    assert intervention_overrides(items.interventions) == [
        "regularize.lecam=0.3", "train.ema_decay=0.999", "train.lr_d=1e-4"
    ]  # fmt: skip
    with pytest.raises(UserError, match=r"'model.width=8' must be key=value .* join several"):
        load_config(None, ['collapse_guard.interventions=["regularize.r1=1; model.width=8"]'])
    with pytest.raises(UserError, match=r"collapse_guard.interventions: train.ema_decay: 2.0"):
        load_config(None, ['collapse_guard.interventions=["regularize.r1=1; train.ema_decay=2"]'])


def test_the_newest_healthy_checkpoint_is_kept_and_chosen(tmp_path):
    def publish(step, healthy):
        stage = checkpoint.staging(tmp_path, step)
        checkpoint.write(stage / checkpoint.STATE, {"step": step})
        guard = {"healthy": healthy, "actions": 0}
        checkpoint.publish(tmp_path, step, keep=2, guard=guard)

    for step, healthy in ((10, True), (20, True), (30, False), (40, False)):
        publish(step, healthy)
    kept = sorted(p.name for p in checkpoint.directory(tmp_path).iterdir())
    assert kept == ["step-00000020", "step-00000030", "step-00000040"]
    assert checkpoint.chosen(tmp_path, "healthy").name == "step-00000020"


def guarded_config(path, data, steps, **guard):
    path.write_text(
        yaml.safe_dump(
            {
                "data": {"dir": str(data)},
                "model": SMALL_MLP,
                "train": {
                    "steps": steps,
                    "batch_size": 64,
                    "loss": "nonsat",
                    "checkpoint_every": 10,
                    "eval_every": 1000,
                    "log_every": 10,
                },
                "eval": {"n_samples_during_training": 200},
                "collapse_guard": {
                    "every": 10,
                    "samples": 200,
                    "real_samples": 400,
                    "patience": 2,
                    **guard,
                },
                "tracking": {"wandb": False},
            }  # fmt: skip
        )
    )
    return path


@pytest.mark.slow
def test_a_collapse_rolls_back_to_the_last_healthy_checkpoint_and_intervenes(ring, tmp_path):
    """40 healthy steps (the threshold cannot fail); resumed with one that always fails: two
    failed checks roll back to step 40 and turn R1 on; two more find nothing left to try."""
    run = tmp_path / "run"
    lenient = guarded_config(tmp_path / "a.yaml", ring, 40, min_class_entropy=0.01)
    ganpipe("train", "--config", lenient, "--run-dir", run)
    strict = guarded_config(
        tmp_path / "b.yaml", ring, 80, min_class_entropy=0.9999,
        interventions=["regularize.r1=0.5"],
    )  # fmt: skip
    done = ganpipe("train", "--config", strict, "--run-dir", run, "--resume")
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    alerts = [r for r in records if r.get("alert") == "collapse"]
    assert len(alerts) == 2, done.stderr[-2000:]
    first, second = alerts
    assert first["step"] == 60 and "class_entropy" in first["text"] and "< 0.9999" in first["text"]
    assert "rolled back to step 40 (no collapse seen there)" in first["text"]
    assert "applied regularize.r1=0.5 (1/1)" in first["text"]
    assert second["step"] == 60 and "no intervention left" in second["text"]  # 40 -> 50 -> 60
    checks = [r["step"] for r in records if "guard/recall" in r]
    assert checks == [10, 20, 30, 50, 60, 50, 60, 70]  # the last step is not checked
    final = checkpoint.manifest_of(checkpoint.latest(run))
    assert final["step"] == 80 and final["guard"] == {"healthy": False, "actions": 1}
    again = guarded_config(tmp_path / "c.yaml", ring, 90, interventions=["regularize.r1=0.5"])
    done = ganpipe("train", "--config", again, "--run-dir", run, "--resume")
    assert "collapse guard: in force since before the resume: regularize.r1=0.5" in done.stdout


@pytest.mark.slow
def test_a_second_rollback_to_a_checkpoint_older_than_the_first_intervention(ring, tmp_path):
    """Checks from step 20 always fail: back to step 10 with LeCam, then back to step 10
    again, whose checkpoint has no LeCam state (LeCam starts afresh there), with R1 too."""
    run = tmp_path / "run"
    config = guarded_config(
        tmp_path / "a.yaml", ring, 40, start=20, min_class_entropy=0.9999,
        interventions=["regularize.lecam=0.3", "regularize.r1=0.5"],
    )  # fmt: skip
    done = ganpipe("train", "--config", config, "--run-dir", run)
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    alerts = [r["text"] for r in records if r.get("alert") == "collapse"]
    assert "rolled back to step 10" in alerts[0] and "regularize.lecam=0.3 (1/2)" in alerts[0]
    assert "rolled back to step 10" in alerts[1] and "regularize.r1=0.5 (2/2)" in alerts[1]
    final = checkpoint.latest(run)
    assert checkpoint.manifest_of(final)["step"] == 40, done.stderr[-2000:]
    toolbox = checkpoint.load(final / checkpoint.STATE)["toolbox"]
    assert any(key.startswith("lecam.") for key in toolbox)


@pytest.mark.slow
def test_after_an_ada_intervention_the_new_toolbox_is_logged_and_saved(digits16, tmp_path):
    """The guard's check always fails (D's accuracy above 0) and turns ADA on at step 2, with
    an EMA of G: from step 3 on, ADA's probability is logged, the rank file records ADA's
    state, and the EMA (a copy of G before) averages."""
    recipe = "d_augment.ada_target=0.6; train.ema_decay=0.5"
    settings = {
        "data": {"dir": str(digits16)},
        "model": {"family": "dcgan", "z_dim": 8, "width": 4, "d_width": 4},
        "train": {"steps": 8, "batch_size": 16, "checkpoint_every": 4, "eval_every": 1000,
                  "sample_every": 1000, "log_every": 1, "ema_decay": 0.0},
        "eval": {"n_samples": 100, "n_samples_during_training": 100},
        "collapse_guard": {"every": 2, "samples": 40, "real_samples": 40, "patience": 1,
                           "max_d_accuracy": 0.0, "interventions": [recipe]},
        "tracking": {"wandb": False},
    }  # fmt: skip
    config, run = tmp_path / "c.yaml", tmp_path / "run"
    config.write_text(yaml.safe_dump(settings))
    ganpipe("train", "--config", config, "--run-dir", run)
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    alerts = [r for r in records if r.get("alert") == "collapse"]
    assert alerts[0]["step"] == 2 and f"applied {recipe} (1/1)" in alerts[0]["text"]
    assert [r["step"] for r in records if "ada_p" in r] == [3, 4, 5, 6, 7, 8]
    ranked = json.loads((run / "ranks" / "rank0.json").read_text())
    assert "augment.p" in ranked["toolbox"]
    state = checkpoint.load(checkpoint.latest(run) / checkpoint.STATE)
    averaged = [k for k, v in state["G"].items() if not torch.equal(v, state["G_ema"][k])]
    assert averaged  # with ema_decay 0 throughout, the EMA would equal G
