import pickle
import random

import numpy as np
import pytest
import torch

from pipeline.errors import UserError
from pipeline.train import checkpoint


def test_publish_is_atomic_and_keeps_the_newest(tmp_path):
    for step in (10, 20, 30):
        stage = checkpoint.staging(tmp_path, step)
        checkpoint.write(stage / checkpoint.STATE, {"step": step})
        checkpoint.publish(tmp_path, step, keep=2)
    names = sorted(p.name for p in checkpoint.directory(tmp_path).iterdir())
    assert names == ["step-00000020", "step-00000030"]  # no staging directory left behind
    assert checkpoint.load(checkpoint.latest(tmp_path) / checkpoint.STATE)["step"] == 30


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
