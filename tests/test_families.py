"""Each model family trains end to end from the CLI on the bundled digits, and resumes."""

import json

import pytest
from conftest import ganpipe

FAMILIES = {  # tiny on purpose: these runs prove the plumbing, not the quality
    "progan": "{family: progan, z_dim: 8, width: 2, d_width: 2, conditional: true}",
    "biggan": "{family: biggan, z_dim: 8, width: 2, d_width: 2, conditional: true, "
    "spectral_norm_g: true, attention: 16, shared_dim: 8, init: orthogonal}",
    "vaegan": "{family: vaegan, z_dim: 8, width: 4, d_width: 4, conditional: true}",
}
TRAIN = """
train: {steps: 4, batch_size: 8, ortho_reg: 1.0e-4, checkpoint_every: 2, eval_every: 4,
        sample_every: 4, log_every: 1, phase_images: 20}
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
    ganpipe("data", "build", "npz", tmp_path / "d.npz", "--out", tmp_path / "data", "--channels", 1)
    done = ganpipe(
        "model-info",
        "--config",
        "configs/biggan-digits.yaml",
        f"data.dir={tmp_path / 'data'}",
        "data.classes=-1",
        check=False,
    )
    assert "model.conditional: the dataset has no class labels" in done.stderr
