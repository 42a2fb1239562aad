"""Each model family trains end to end from the CLI on the bundled digits, and resumes."""

import json

import pytest
from conftest import ganpipe

from pipeline.runs import checkpoint
from pipeline.runs.loading import load_models

pytestmark = pytest.mark.slow  # starts training processes

FAMILIES = {  # tiny on purpose: these runs prove the plumbing, not the quality
    "progan": "{family: progan, z_dim: 8, width: 2, d_width: 2, conditional: true}",
    "biggan": "{family: biggan, z_dim: 8, width: 2, d_width: 2, conditional: true, "
    "spectral_norm_g: true, attention: 16, shared_dim: 8, init: orthogonal}",
    "vaegan": "{family: vaegan, z_dim: 8, width: 4, d_width: 4, conditional: true}",
    "stylegan2": "{family: stylegan2, z_dim: 8, width: 8, d_width: 8, channel_base: 64, "
    "mapping_layers: 2, conditional: true, bf16_resolutions: 1}",
}
TRAIN = """
train: {steps: 4, batch_size: 8, checkpoint_every: 2, eval_every: 4,
        sample_every: 4, log_every: 1, phase_images: 20}
regularize: {orthogonal: 1.0e-4}
eval: {n_samples: 100, n_samples_during_training: 100, grid_size: 10}
tracking: {wandb: false}
"""


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_family_trains_and_resumes(family, digits32, tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text(f"data: {{dir: {digits32}}}\nmodel: {FAMILIES[family]}\n{TRAIN}")
    run = tmp_path / "run"
    ganpipe("train", "--config", config, "--run-dir", run)
    ganpipe("train", "--run-dir", run, "--resume", "train.steps=6")
    records = [json.loads(line) for line in (run / "metrics.jsonl").open()]
    assert [r["step"] for r in records if "eval/fid" in r] == [4, 6]
    metrics = json.loads(ganpipe("eval", "--run", run, "--n", 100).stdout)
    assert metrics["fid"] > 0 and metrics["step"] == 6
    if family == "progan":  # 8 images a step, 20 a phase: the resume after step 4 is mid-fade
        stages = [(r["step"], r["level"], round(r["alpha"], 4)) for r in records if "level" in r]
        expected = [(1, 0, 1.0), (2, 0, 1.0), (3, 0, 1.0), (4, 1, 0.2), (5, 1, 0.6), (6, 1, 1.0)]
        assert stages == expected
        state = checkpoint.load(checkpoint.latest(run) / checkpoint.STATE)
        assert state["stage"] == [1, 1.0]  # the stage of the last step, saved with the models
        loaded = load_models(run)
        assert (loaded.generator.level, loaded.discriminator.alpha) == (1, 1.0)


def test_model_info_without_the_data(tmp_path):
    info = json.loads(ganpipe("model-info", "--config", "configs/biggan-imagenet128.yaml").stdout)
    assert info == {
        "G": 70433988,
        "D": 87982370,
        "family": "biggan",
        "shape": [3, 128, 128],
        "classes": 1000,
    }
    done = ganpipe(
        "model-info", "--config", "configs/biggan-imagenet128.yaml", "data.shape=[]", check=False
    )
    assert "set data.shape and data.classes" in done.stderr and done.returncode == 2


def test_config_expectations_are_checked_against_the_data(digits32):
    done = ganpipe(
        "model-info",
        "--config",
        "configs/biggan-digits.yaml",
        f"data.dir={digits32}",
        "data.shape=[3,32,32]",
        check=False,
    )
    assert done.returncode == 2
    assert "data.shape: the config expects [3, 32, 32] but" in done.stderr
    assert "index.json has [1, 32, 32]" in done.stderr


def test_conditional_needs_labels(tmp_path):
    import numpy as np

    np.savez(tmp_path / "d.npz", images=np.zeros((4, 32, 32), np.uint8))
    ganpipe("data", "build", "npz", tmp_path / "d.npz", "--out", tmp_path / "data", "--channels", 1,
            "--resolution", 16)  # the digits BigGAN's size
    done = ganpipe(
        "model-info",
        "--config",
        "configs/biggan-digits.yaml",
        f"data.dir={tmp_path / 'data'}",
        "data.classes=-1",
        check=False,
    )
    assert "model.conditional: the dataset has no class labels" in done.stderr


TOOLBOX = """
train: {steps: 3, batch_size: 8, loss: lsgan, relativistic: true, mixed_precision: bf16,
        checkpoint_every: 3, eval_every: 3, sample_every: 3, log_every: 1, phase_images: 20}
regularize: {r1: 0.1, r1_every: 2, lecam: 0.1, mode_seeking: 0.1}
d_augment: {ada_target: 0.6, ada_interval: 1, ada_images: 100}
eval: {n_samples: 100, n_samples_during_training: 100, grid_size: 10}
tracking: {wandb: false}
"""
D_OPTIONS = "pack: 2, minibatch_stddev: 2, d_dropout: 0.1"
STYLE_D_OPTIONS = "pack: 2, minibatch_stddev: 2"  # stylegan2's D has no dropout


@pytest.mark.parametrize("family", ["dcgan", *sorted(FAMILIES)])
def test_every_family_trains_with_the_whole_toolbox(family, digits32, tmp_path):
    """Conditional, bf16, relativistic LSGAN, lazy R1, LeCam, mode seeking, ADA, packing,
    minibatch-stddev and dropout at once; the toolbox's state is checkpointed."""
    import torch

    model = FAMILIES.get(
        family, "{family: dcgan, z_dim: 8, width: 4, d_width: 4, conditional: true}"
    )
    config = tmp_path / "c.yaml"
    options = STYLE_D_OPTIONS if family == "stylegan2" else D_OPTIONS
    config.write_text(f"data: {{dir: {digits32}}}\nmodel: {model[:-1]}, {options}}}\n{TOOLBOX}")
    run = tmp_path / "run"
    ganpipe("train", "--config", config, "--run-dir", run)
    records = [json.loads(line) for line in (run / "metrics.jsonl").open()]
    logged = [r for r in records if "penalty_d" in r]
    assert len(logged) == 3 and all(r["penalty_d"] > 0 for r in logged)
    assert all(0 <= r["ada_p"] <= 1 and -1 <= r["ada_r"] <= 1 for r in logged)
    state = torch.load(run / "checkpoints" / "step-00000003" / "state.pt", weights_only=True)
    assert set(state["toolbox"]) >= {"augment.p", "lecam.means"}
    assert state["toolbox"]["augment.p"].item() == pytest.approx(logged[-1]["ada_p"])


def test_gradient_penalty_and_packing_on_2d_points(ring, tmp_path):
    run = tmp_path / "run"
    ganpipe(
        "train",
        "--run-dir",
        run,
        f"data.dir={ring}",
        "model.family=mlp",
        "model.pack=4",
        "model.width=32",
        "model.d_width=32",
        "train.loss=wgan",
        "regularize.gradient_penalty=10",
        "train.steps=5",
        "train.log_every=1",
        "train.eval_every=5",
        "eval.n_samples_during_training=500",
        "tracking.wandb=false",
    )
    records = [json.loads(line) for line in (run / "metrics.jsonl").open()]
    assert all(r["penalty_d"] > 0 for r in records if "penalty_d" in r)
    assert any("eval/modes" in r for r in records)
    done = ganpipe(
        "train",
        "--run-dir",
        tmp_path / "r2",
        f"data.dir={ring}",
        "model.family=mlp",
        "d_augment.diffaugment=[color]",
        check=False,
    )
    assert done.returncode == 2 and "d_augment: DiffAugment and ADA augment images" in done.stderr
