import pytest
import torch
from conftest import SMALL_MLP, ganpipe
from torch import nn

from pipeline.config import ModelConfig
from pipeline.data.description import Dataset
from pipeline.models import build_models
from pipeline.optimizers import adam
from pipeline.runs import checkpoint
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


def test_ema_copies_spectral_norms_vectors_so_its_weights_keep_their_scale():
    """Averaged, the power iteration's unit vectors shrink, the norm estimated from them
    falls and every normalised weight of the average grows: BigGAN's EMA drew noise."""
    from pipeline.models.layers import Layers

    live = Layers(True).linear(8, 8)
    ema = EMA(live, decay=0.5)
    ema.decay_at = lambda step: 0.5
    for step in range(5):
        with torch.no_grad():
            live.parametrizations.weight.original.copy_(torch.randn(8, 8))
        live.train()(torch.randn(2, 8))  # a power iteration towards the new weight
        ema.update(live, step)
    vectors = [n for n, _ in live.named_buffers()]
    assert vectors == ["parametrizations.weight.0._u", "parametrizations.weight.0._v"]
    for name in vectors:
        assert torch.equal(ema.model.get_buffer(name), live.get_buffer(name))
    ema.model.eval()  # normalises with the stored vectors, as sampling does
    sigma = torch.linalg.matrix_norm(ema.model.weight, ord=2)
    assert 0.5 < sigma < 2  # the average of the live model's last 5 weights, normalised


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


def test_channels_last_models_compute_what_contiguous_ones_do():
    torch.manual_seed(0)
    images = Dataset.shaped([1, 32, 32], 10)
    G, D = build_models(ModelConfig(family="biggan", width=8, d_width=8), images)
    G, D = G.eval(), D.eval()  # spectral norm's power iteration moves on every training pass
    z, y = torch.randn(4, G.z_dim), torch.arange(4)
    images = G(z, y)
    logits = D(images, y)
    G, D = G.to(memory_format=torch.channels_last), D.to(memory_format=torch.channels_last)
    nhwc = G(z, y)
    assert nhwc.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(nhwc, images, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(D(nhwc, y), logits, rtol=1e-4, atol=1e-5)


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["default", "reduce-overhead"])  # CUDA graphs: GPU only
def test_a_compiled_run_trains_and_checkpoints_the_plain_modules(ring, tmp_path, mode):
    run = tmp_path / "run"
    model = [f"model.{key}={value}" for key, value in SMALL_MLP.items()]
    done = ganpipe("train", "--run-dir", run, f"data.dir={ring}", *model, "train.compile=true",
                   f"train.compile_mode={mode}", "train.steps=3", "train.eval_every=3",
                   "tracking.wandb=false")  # fmt: skip
    assert "_dynamo" not in done.stderr  # compiled, not fallen back to eager
    state = checkpoint.load(checkpoint.latest(run) / checkpoint.STATE)
    assert not any("_orig_mod" in key for key in state["G"])  # loads into an eager model
    sampled = ganpipe("sample", "--run", run, "--n", "10", "--out", tmp_path / "s.npz")
    assert sampled.returncode == 0
