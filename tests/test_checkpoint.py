import os
import pickle
import random

import numpy as np
import pytest
import torch

from pipeline.errors import UserError
from pipeline.runs import checkpoint


def publish(run, step, score=None, keep=2):
    stage = checkpoint.staging(run, step)
    checkpoint.write(stage / checkpoint.STATE, {"step": step})
    checkpoint.write(stage / checkpoint.rank_file(0), {"rng": torch.arange(step)})
    return checkpoint.publish(run, step, keep=keep, score=score)


def test_publish_is_atomic_and_keeps_the_newest(tmp_path):
    for step in (10, 20, 30):
        publish(tmp_path, step)
    names = sorted(p.name for p in checkpoint.directory(tmp_path).iterdir())
    assert names == ["step-00000020", "step-00000030"]  # no staging directory left behind
    assert checkpoint.load(checkpoint.latest(tmp_path) / checkpoint.STATE)["step"] == 30


def test_the_best_scored_checkpoint_is_kept_beside_the_newest(tmp_path):
    for step, score in ((10, 5.0), (20, 2.0), (30, None), (40, 3.0), (50, None)):
        publish(tmp_path, step, score)
    names = sorted(p.name for p in checkpoint.directory(tmp_path).iterdir())
    assert names == ["step-00000020", "step-00000040", "step-00000050"]


def test_a_checkpoint_is_chosen_by_latest_best_step_name_or_path(tmp_path):
    for step, score in ((10, 5.0), (20, 2.0), (30, None)):
        publish(tmp_path, step, score, keep=3)
    name = lambda which: checkpoint.chosen(tmp_path, which).name  # noqa: E731
    assert name(None) == name("latest") == "step-00000030"
    assert name("best") == name("20") == name("step-00000020") == "step-00000020"
    assert name(str(checkpoint.directory(tmp_path) / "step-00000010")) == "step-00000010"
    with pytest.raises(UserError, match=r"--checkpoint 40: no checkpoint .* step-00000010, "):
        checkpoint.chosen(tmp_path, "40")
    os.truncate(checkpoint.directory(tmp_path) / "step-00000010" / checkpoint.STATE, 10)
    with pytest.raises(UserError, match="--checkpoint 10: .* is damaged"):
        checkpoint.chosen(tmp_path, "10")


@pytest.mark.parametrize(
    ("damage", "reported"),
    [
        ("truncate", "state.pt has 100 bytes"),
        ("flip", "state.pt does not match its checksum"),
        ("delete", "rank0.pt is missing"),
    ],
)
def test_a_damaged_latest_checkpoint_is_reported_and_the_previous_used(
    tmp_path, capsys, damage, reported
):
    publish(tmp_path, 10)
    newest = publish(tmp_path, 20)
    if damage == "truncate":
        os.truncate(newest / checkpoint.STATE, 100)
    elif damage == "flip":
        data = bytearray((newest / checkpoint.STATE).read_bytes())
        data[len(data) // 2] ^= 1
        (newest / checkpoint.STATE).write_bytes(bytes(data))
    else:
        (newest / checkpoint.rank_file(0)).unlink()
    assert checkpoint.latest(tmp_path).name == "step-00000010"
    assert f"checkpoint {newest} is damaged ({reported}" in capsys.readouterr().err


def test_every_checkpoint_damaged_is_one_clear_error(tmp_path):
    for step in (10, 20):
        os.truncate(publish(tmp_path, step) / checkpoint.STATE, 10)
    with pytest.raises(UserError, match="every checkpoint under .* is damaged"):
        checkpoint.latest(tmp_path)


def test_rng_state_round_trips_through_a_safe_load(tmp_path):
    random.seed(1)
    np.random.seed(1)
    torch.manual_seed(1)
    checkpoint.write(tmp_path / "rng.pt", checkpoint.rng_state())
    expected = (random.random(), np.random.rand(), torch.rand(1).item())
    checkpoint.set_rng_state(checkpoint.load(tmp_path / "rng.pt"))
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == expected


class Payload:
    def __reduce__(self):
        return (print, ("this code ran",))


def test_a_checkpoint_carrying_code_is_refused(tmp_path):
    path = tmp_path / "evil.pt"
    with open(path, "wb") as f:
        pickle.dump({"step": Payload()}, f)
    torch.save({"G": Payload()}, tmp_path / "evil2.pt")
    for bad in (path, tmp_path / "evil2.pt"):
        with pytest.raises(UserError, match="cannot load checkpoint"):
            checkpoint.load(bad)
