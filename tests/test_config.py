from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline.config import Config, load_config, save_config
from pipeline.errors import UserError

ROOT = Path(__file__).resolve().parents[1]


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "c.yaml"
    path.write_text(text)
    return path


def test_every_shipped_config_loads():
    for path in (ROOT / "configs").glob("*.yaml"):
        assert isinstance(load_config(path), Config)


def test_yaml_and_dotted_overrides(tmp_path):
    path = write(tmp_path, "train:\n  lr_d: 1.0e-3\n  steps: 10\nmodel:\n  family: mlp\n")
    config = load_config(path, ["train.lr_d=4e-4", "seed=3", "train.betas_g=[0.5, 0.9]"])
    assert config.train.lr_d == pytest.approx(4e-4)  # "4e-4" is a string to YAML 1.1
    assert config.train.steps == 10 and config.seed == 3
    assert config.model.family == "mlp" and config.train.betas_g == [0.5, 0.9]


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("train.lr_dd=1", "unknown config key train.lr_dd: did you mean train.lr_d?"),
        ("trian.steps=1", "unknown config key trian: did you mean train?"),
        ("train.steps=ten", "train.steps: expected int, got 'ten'"),
        ("train.steps=1.5", "train.steps: expected int, got 1.5"),
        ("train.loss=wgangp", "train.loss: 'wgangp' is not one of hinge, nonsat, wgan, lsgan"),
        ("train.lr_g=-1e-4", "train.lr_g: -0.0001 is out of range, accepted: >= 0.0"),
        ("train.ema_decay=1.5", "train.ema_decay: 1.5 is out of range, accepted: in [0.0, 1.0]"),
        ("train.betas_d=[0.5]", "train.betas_d: [0.5], accepted: two numbers in [0, 1)"),
        ("model.conditional=maybe", "model.conditional: expected bool, got 'maybe'"),
        ("train=3", "train: expected a section (mapping), got 3"),
        ("steps", "override 'steps': expected key.path=value"),
    ],
)
def test_bad_values_name_the_key_and_what_is_accepted(override, message):
    with pytest.raises(UserError) as err:
        load_config(None, [override])
    assert str(err.value).startswith(message)
    assert "\n" not in str(err.value)


def test_missing_file_and_bad_yaml(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        load_config(tmp_path / "nope.yaml")
    with pytest.raises(UserError, match="not valid YAML"):
        load_config(write(tmp_path, "train: [1,"))


def test_resolved_config_round_trips(tmp_path):
    config = load_config(None, ["train.lr_d=4e-4", "model.conditional=true", "name=x"])
    save_config(config, tmp_path / "config.yaml")
    assert load_config(tmp_path / "config.yaml") == config


@given(st.floats(min_value=0, max_value=10, allow_nan=False), st.integers(1, 10**6))
def test_any_valid_number_survives_the_command_line(lr, steps):
    config = load_config(None, [f"train.lr_g={lr!r}", f"train.steps={steps}"])
    assert config.train.lr_g == lr and config.train.steps == steps
