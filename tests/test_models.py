import pytest
import torch

from pipeline.config import ModelConfig
from pipeline.data.description import Dataset
from pipeline.errors import UserError
from pipeline.models import build_models

IMAGES = Dataset.shaped([1, 32, 32], 10)
POINTS = Dataset.shaped([2], 8)


@pytest.mark.parametrize("resolution", [8, 16, 32, 64])
@pytest.mark.parametrize("conditional", [False, True])
def test_dcgan_shapes(resolution, conditional):
    images = Dataset.shaped([3, resolution, resolution], 10)
    g, d = build_models(ModelConfig(width=8, d_width=8, conditional=conditional), images)
    y = torch.arange(4) % 10 if conditional else None
    x = g(torch.randn(4, g.z_dim), y)
    assert x.shape == (4, 3, resolution, resolution) and x.abs().max() <= 1
    assert d(x, y).shape == (4,)


def test_conditional_discriminator_uses_the_label():
    _, d = build_models(ModelConfig(d_width=8, conditional=True), IMAGES)
    x = torch.randn(2, 1, 32, 32)
    assert not torch.allclose(d(x, torch.tensor([0, 0])), d(x, torch.tensor([1, 1])))


def test_spectral_norm_is_an_option_on_every_layer():
    g, d = build_models(ModelConfig(spectral_norm_g=True, spectral_norm_d=False), IMAGES)

    def normed(m):
        weighted = [
            x
            for x in m.modules()
            if isinstance(x, (torch.nn.Conv2d, torch.nn.ConvTranspose2d, torch.nn.Linear))
        ]
        return {hasattr(x, "parametrizations") for x in weighted}

    assert normed(g) == {True}
    assert normed(d) == {False}


def test_mlp_pair():
    g, d = build_models(ModelConfig(family="mlp", width=16, d_width=8, depth=2), POINTS)
    assert g(torch.randn(5, g.z_dim)).shape == (5, 2)
    assert d(torch.randn(5, 2)).shape == (5,)


def test_family_must_match_the_data():
    with pytest.raises(UserError, match="model.family: mlp trains on points data .* pick dcgan"):
        build_models(ModelConfig(family="mlp"), IMAGES)


def test_unsupported_resolution_is_a_user_error():
    with pytest.raises(
        UserError, match="model: dcgan needs a power-of-two resolution >= 8, got 24"
    ):
        build_models(ModelConfig(), Dataset.shaped([1, 24, 24], 10))


@pytest.mark.parametrize(
    ("family", "option", "value", "takers"),
    [
        ("dcgan", "attention", 16, "biggan"),
        ("progan", "spectral_norm_d", False, "dcgan, mlp, biggan, vaegan"),
        ("biggan", "depth", 2, "mlp"),
        ("mlp", "hierarchical", False, "biggan"),
    ],
)
def test_an_option_the_family_does_not_take_is_an_error(family, option, value, takers):
    model = ModelConfig(family=family, **{option: value})
    with pytest.raises(UserError, match=f"model.{option}: {family} does not take it .*{takers}"):
        build_models(model, POINTS if family == "mlp" else IMAGES)


def test_every_family_builds_with_its_own_options_changed():
    own = {
        "dcgan": {"spectral_norm_g": True, "spectral_norm_d": False},
        "biggan": {"attention": 16, "shared_dim": 8, "hierarchical": False, "width": 4},
        "mlp": {"depth": 2, "d_depth": 1, "spectral_norm_g": True},
        "vaegan": {"spectral_norm_g": True},
        "progan": {"width": 4},
    }
    for family, options in own.items():
        data = POINTS if family == "mlp" else IMAGES
        g, d = build_models(ModelConfig(family=family, d_width=4, **options), data)
        assert d(g(torch.randn(2, g.z_dim), None), None).shape == (2,)
