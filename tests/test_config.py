import dataclasses
import tempfile
import typing
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
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
    overrides = [
        "train.lr_d=4e-4",
        "seed=3",
        "train.betas_g=[0.5, 0.9]",
        "train.mixed_precision=no",
    ]
    config = load_config(path, overrides)
    assert config.train.lr_d == pytest.approx(4e-4)  # "4e-4" is a string to YAML 1.1
    assert config.train.mixed_precision == "no"  # and `no` is false
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
        ("train.lr_d=.nan", "train.lr_d: expected a finite float, got nan"),
        ("train.lr_d=inf", "train.lr_d: expected a finite float, got 'inf'"),
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


def field_names(cls) -> set[str]:
    names = set()
    for f in dataclasses.fields(cls):
        names.add(f.name)
        kind = typing.get_type_hints(cls)[f.name]
        if dataclasses.is_dataclass(kind):
            names |= field_names(kind)
    return names


KEYS = sorted(field_names(Config))
words = st.sampled_from(["no", "bf16", "hinge", "1e-3", "[1, 2]"])
leaves = st.none() | st.booleans() | st.integers(-5, 10**6) | st.floats() | st.text(max_size=6)
leaves |= words
values = st.recursive(
    leaves,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(KEYS), inner, max_size=3)
    ),
    max_leaves=8,
)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from([*KEYS, "bogus"]), values, max_size=4))
def test_any_config_file_loads_and_round_trips_or_fails_with_one_line(raw):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "c.yaml"
        path.write_text(yaml.safe_dump(raw))
        try:
            config = load_config(path)
        except UserError as err:
            assert "\n" not in str(err)
            return
    assert isinstance(config, Config)
    assert load_config(None, [f"{k}={v}" for k, v in flat(config.to_dict())]) == config


def flat(tree: dict, prefix: str = ""):
    for key, value in tree.items():
        if isinstance(value, dict):
            yield from flat(value, f"{prefix}{key}.")
        else:
            yield (
                f"{prefix}{key}",
                yaml.safe_dump(value, default_flow_style=True).strip().removesuffix("\n..."),
            )
