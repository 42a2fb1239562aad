import pytest
import torch
from torch import nn

from pipeline.train.ema import EMA
from pipeline.train.optimizers import adam


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


def test_adam_is_fused_where_torch_has_the_kernel_and_updates_as_foreach_does():
    torch.manual_seed(0)
    models = [nn.Linear(4, 3), nn.Linear(4, 3)]
    models[1].load_state_dict(models[0].state_dict())
    fused = adam(models[0].parameters(), 1e-2, (0.5, 0.999), "cpu")
    plain = torch.optim.Adam(models[1].parameters(), 1e-2, betas=(0.5, 0.999), foreach=True)
    assert fused.defaults["fused"]
    x = torch.randn(8, 4)
    for _ in range(5):
        for model, optimizer in zip(models, (fused, plain), strict=True):
            optimizer.zero_grad()
            model(x).square().mean().backward()
            optimizer.step()
    for a, b in zip(models[0].parameters(), models[1].parameters(), strict=True):
        assert torch.allclose(a, b, atol=1e-6)
    assert not torch.equal(models[0].weight, nn.Linear(4, 3).weight)


def test_adam_falls_back_to_foreach_without_a_fused_kernel():
    optimizer = adam(nn.Linear(2, 2).parameters(), 1e-3, (0.5, 0.999), "xla")
    assert optimizer.defaults["foreach"] and not optimizer.defaults["fused"]
