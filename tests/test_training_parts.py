import math

import pytest
import torch
from torch import nn

from pipeline.train.ema import EMA
from pipeline.train.losses import HINGE, NON_SATURATING

REAL = torch.tensor([2.0, 0.5, -1.0])
FAKE = torch.tensor([-2.0, 0.0, 1.5])


def test_hinge_by_hand():
    # relu(1 - real) = [0, 0.5, 2] -> 5/6 ; relu(1 + fake) = [0, 1, 2.5] -> 7/6
    assert HINGE.d_loss(REAL, FAKE).item() == pytest.approx(5 / 6 + 7 / 6)
    assert HINGE.g_loss(FAKE).item() == pytest.approx(-(-2.0 + 0.0 + 1.5) / 3)


def test_non_saturating_by_hand():
    def softplus(v):
        return math.log1p(math.exp(v))

    d = sum(softplus(-r) for r in REAL.tolist()) / 3 + sum(softplus(f) for f in FAKE.tolist()) / 3
    g = sum(softplus(-f) for f in FAKE.tolist()) / 3
    assert NON_SATURATING.d_loss(REAL, FAKE).item() == pytest.approx(d)
    assert NON_SATURATING.g_loss(FAKE).item() == pytest.approx(g)


def small_model() -> nn.Module:
    return nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2))


def test_ema_copies_before_start_then_averages_with_a_ramp():
    live = small_model()
    ema = EMA(live, decay=0.99, start=1)
    with torch.no_grad():
        live[0].weight.fill_(1.0)
    ema.update(live, step=0)  # before start: a copy
    assert torch.equal(ema.model[0].weight, live[0].weight)
    with torch.no_grad():
        live[0].weight.fill_(2.0)
    ema.update(live, step=1)  # first averaged step: decay (1 + 0) / (10 + 0) = 0.1
    assert torch.allclose(ema.model[0].weight, torch.full((2, 2), 0.1 * 1 + 0.9 * 2))
    assert ema.decay_at(1000) == 0.99  # the ramp is capped by the configured decay


def test_ema_averages_float_buffers_and_copies_counters():
    live = small_model()
    ema = EMA(live, decay=0.5)
    ema.decay_at = lambda step: 0.5
    live.train()(torch.randn(16, 2) * 5 + 3)  # moves batch-norm running statistics
    ema.update(live, step=10)
    assert torch.allclose(ema.model[1].running_mean, live[1].running_mean / 2)  # from 0
    assert ema.model[1].num_batches_tracked.item() == 1
    assert not any(p.requires_grad for p in ema.model.parameters())
