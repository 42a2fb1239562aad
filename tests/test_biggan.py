import pytest
import torch

from pipeline.config import ModelConfig
from pipeline.data.description import Dataset
from pipeline.models import biggan, build_models
from pipeline.models.layers import Layers
from pipeline.train.regularizers import orthogonal_penalty


def tiny(resolution, conditional, **kw):
    config = ModelConfig(
        family="biggan",
        z_dim=kw.pop("z_dim", 24),
        width=4,
        d_width=4,
        conditional=conditional,
        spectral_norm_g=True,
        **kw,
    )
    return build_models(config, Dataset.shaped([3, resolution, resolution], 5))


@pytest.mark.parametrize(
    ("resolution", "z_dim"), [(16, 24), (32, 24), (64, 25), (128, 24), (256, 28)]
)  # z splits into blocks + 1 chunks
@pytest.mark.parametrize("conditional", [False, True])
def test_shapes_at_every_resolution(resolution, z_dim, conditional):
    g, d = tiny(resolution, conditional, z_dim=z_dim, attention=resolution // 2)
    y = torch.tensor([0, 4]) if conditional else None
    x = g(torch.randn(2, z_dim), y)
    assert x.shape == (2, 3, resolution, resolution) and x.abs().max() <= 1
    assert d(x, y).shape == (2,)
    assert any(isinstance(m, biggan.SelfAttention) for m in g.modules())
    assert any(isinstance(m, biggan.SelfAttention) for m in d.modules())


def test_unsupported_resolution_and_uneven_latent_are_user_errors():
    from pipeline.errors import UserError

    with pytest.raises(UserError, match="biggan supports resolutions 16, 32, 64, 128, 256, got 8"):
        tiny(8, False)
    with pytest.raises(UserError, match="z_dim 25 must split evenly into 4 chunks"):
        tiny(32, False, z_dim=25)


@pytest.mark.parametrize("shared_dim", [0, 16])
def test_gradients_reach_every_parameter(shared_dim):
    g, d = tiny(32, True, attention=16, shared_dim=shared_dim)
    for module in [*g.modules(), *d.modules()]:
        if isinstance(module, biggan.SelfAttention):
            module.gamma.data.fill_(0.5)  # open the gate, which starts closed at 0
    y = torch.tensor([1, 2, 3])
    (d(g(torch.randn(3, 24), y), y).sum() + 1e-3 * orthogonal_penalty(g)).backward()
    for model in (g, d):
        for name, p in model.named_parameters():
            assert p.grad is not None and p.grad.abs().sum() > 0, name


@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last])
def test_self_attention_is_sagans(layout):
    """The fused call computes SAGAN's attention: softmax of unscaled query-key products over
    the pooled positions, mixing the pooled values."""
    torch.manual_seed(0)
    attention = biggan.SelfAttention(Layers(True), 32).eval()
    attention.gamma.data.fill_(0.7)
    x = torch.randn(2, 32, 8, 8).to(memory_format=layout)
    with torch.no_grad():
        query = attention.theta(x).flatten(2)
        key = torch.nn.functional.max_pool2d(attention.phi(x), 2).flatten(2)
        value = torch.nn.functional.max_pool2d(attention.g(x), 2).flatten(2)
        weights = torch.softmax(query.transpose(1, 2) @ key, dim=-1)
        expected = x + 0.7 * attention.out((value @ weights.transpose(1, 2)).view(2, 16, 8, 8))
        torch.testing.assert_close(attention(x), expected)


def test_class_conditioning_changes_the_image():
    g, _ = tiny(32, True)
    g.eval()
    z = torch.randn(1, 24).repeat(2, 1)
    x = g(z, torch.tensor([0, 1]))
    assert not torch.allclose(x[0], x[1])


def test_spectral_norm_keeps_the_top_singular_value_near_one():
    torch.manual_seed(0)
    g, d = tiny(32, False)
    optimizer = torch.optim.Adam(d.parameters(), lr=0.02)
    for _ in range(30):  # large steps: raw weights grow, the normalised ones must not
        loss = -d(torch.randn(4, 3, 32, 32)).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():  # one power iteration per forward: let the estimate catch up
        for _ in range(20):
            d(torch.randn(4, 3, 32, 32))
    d.eval()
    for module in d.modules():
        if isinstance(module, torch.nn.Conv2d):
            with torch.no_grad():
                sigma = torch.linalg.matrix_norm(module.weight.flatten(1), ord=2).item()
            assert sigma == pytest.approx(1.0, abs=0.1)


def test_orthogonal_penalty_by_hand():
    layer = torch.nn.Linear(3, 3, bias=False)
    with torch.no_grad():
        layer.weight.copy_(torch.linalg.qr(torch.randn(3, 3)).Q * 2.0)  # orthogonal rows, norm 2
    assert orthogonal_penalty(layer).item() == pytest.approx(0.0, abs=1e-9)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([[1.0, 1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]))
    # W W^T off-diagonal: (0,1) and (1,0) = 1, others 0 -> 1^2 + 1^2
    assert orthogonal_penalty(layer).item() == pytest.approx(2.0)


def test_imagenet128_parameter_counts_match_the_paper():
    config = ModelConfig(
        family="biggan",
        z_dim=120,
        width=96,
        d_width=96,
        conditional=True,
        spectral_norm_g=True,
        attention=64,
        shared_dim=128,
    )
    g, d = build_models(config, Dataset.shaped([3, 128, 128], 1000))
    count = lambda m: sum(p.numel() for p in m.parameters()) / 1e6  # noqa: E731
    assert count(g) == pytest.approx(70.4, rel=0.02) and count(d) == pytest.approx(88.0, rel=0.02)


def test_normal_init_reaches_the_class_embeddings():
    g, d = tiny(32, True, init="normal", shared_dim=64)
    assert g.shared.weight.std().item() == pytest.approx(0.02, rel=0.2)  # not N(0, 1)
    assert g.linear.parametrizations.weight.original.std().item() == pytest.approx(0.02, rel=0.2)
