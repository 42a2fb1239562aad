import pytest
import torch
from torch import nn

from pipeline.train.ema import EMA


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


def test_learning_rate_schedule_is_flat_then_falls_linearly_to_one_percent():
    from pipeline.train.schedule import lr_factor

    assert lr_factor(0, 100, 1.0) == lr_factor(99, 100, 1.0) == 1.0
    assert lr_factor(69, 100, 0.7) == 1.0 and lr_factor(70, 100, 0.7) == 1.0
    assert lr_factor(85, 100, 0.7) == pytest.approx(1 - 0.99 / 2)
    assert lr_factor(100, 100, 0.7) == pytest.approx(0.01)
