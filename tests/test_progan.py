import pytest
import torch

from pipeline.config import ModelConfig
from pipeline.data.description import Dataset
from pipeline.models import build_models, progan
from pipeline.models.growth import Growth


def models(resolution=32, conditional=False):
    config = ModelConfig(family="progan", z_dim=16, width=2, d_width=2, conditional=conditional)
    return build_models(config, Dataset.shaped([3, resolution, resolution], 4))


@pytest.mark.parametrize("conditional", [False, True])
def test_every_stage_speaks_full_resolution(conditional):
    g, d = models(conditional=conditional)
    y = torch.tensor([0, 3]) if conditional else None
    for level in range(g.levels):
        for alpha in (0.0, 0.5, 1.0):
            g.set_stage(level, alpha)
            d.set_stage(level, alpha)
            x = g(torch.randn(2, 16), y)
            assert x.shape == (2, 3, 32, 32) and d(x, y).shape == (2,)


def test_a_stage_renders_at_its_own_resolution():
    g, _ = models()
    g.set_stage(1, 1.0)  # 8x8, upsampled by repeating each pixel 4x4
    x = g(torch.randn(1, 16))
    assert torch.equal(x, x[:, :, ::4, ::4].repeat_interleave(4, 2).repeat_interleave(4, 3))


def test_fade_in_at_alpha_zero_is_the_upsampled_lower_resolution():
    g, d = models()
    z, x = torch.randn(3, 16), torch.randn(3, 3, 32, 32)
    for level in range(1, g.levels):
        g.set_stage(level, 0.0)
        d.set_stage(level, 0.0)
        faded_g, faded_d = g(z), d(x)
        g.set_stage(level - 1, 1.0)
        d.set_stage(level - 1, 1.0)
        assert torch.allclose(faded_g, g(z), atol=1e-6)
        assert torch.allclose(faded_d, d(x), atol=1e-5)


def test_schedule_fades_then_stabilises_each_level():
    growth = Growth(levels=3, phase_images=100)
    assert growth.stage(0) == (0, 1.0) and growth.stage(99) == (0, 1.0)
    assert growth.stage(100) == (1, 0.0) and growth.stage(150) == (1, 0.5)
    assert growth.stage(200) == (1, 1.0) and growth.stage(300) == (2, 0.0)
    assert growth.stage(400) == (2, 1.0) and growth.stage(10**9) == (2, 1.0)


def test_pixel_norm():
    x = torch.randn(8, 5, 4, 4) * 7
    assert torch.allclose(progan.pixel_norm(x).pow(2).mean(dim=1), torch.ones(8, 4, 4), atol=1e-4)


def test_equalized_learning_rate_scales_at_run_time():
    torch.manual_seed(0)
    layer = progan.EqualLinear(256, 256)
    assert layer.weight.std().item() == pytest.approx(1.0, rel=0.05)  # stored N(0, 1)
    out = layer(torch.randn(1024, 256))
    assert out.pow(2).mean().item() == pytest.approx(2.0, rel=0.1)  # He gain sqrt(2) at run time


def test_gradients_reach_every_layer_the_stage_uses():
    g, d = models(conditional=True)
    last = g.levels - 1
    for model in (g, d):
        model.set_stage(last, 0.5)  # fading in: the top two resolutions' RGB layers both work
    y = torch.tensor([1, 2])
    d(g(torch.randn(2, 16), y), y).sum().backward()
    idle = {f"{rgb}.{i}." for rgb in ("to_rgb", "from_rgb") for i in range(last - 1)}
    for model in (g, d):
        for name, p in model.named_parameters():
            used = not any(name.startswith(prefix) for prefix in idle)
            assert (p.grad is not None and p.grad.abs().sum() > 0) == used, name
