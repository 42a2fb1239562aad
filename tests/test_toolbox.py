"""The anti-collapse toolbox part by part: penalties against hand-computed values and their
gradients, ADA's probability, the augmentations, packing and minibatch-stddev."""

from types import SimpleNamespace

import pytest
import torch
from torch import nn

from pipeline.config import load_config
from pipeline.errors import UserError
from pipeline.models.layers import Packed, minibatch_stddev
from pipeline.train.d_augment import AdaptiveAugment, DiffAugment, cutout, translation
from pipeline.train.penalties import R1, GradientPenalty, Judged, LeCam
from pipeline.train.regularizers import ModeSeeking


class Quadratic(nn.Module):
    """D(x) = sum_j w_j x_j^2: dD/dx = 2 w x, so every penalty has a closed form."""

    def __init__(self, w):
        super().__init__()
        self.w = nn.Parameter(torch.tensor(w))

    def forward(self, x, y=None):
        return (x * x * self.w).sum(1)


class Linear(nn.Module):
    def __init__(self, w):
        super().__init__()
        self.w = nn.Parameter(torch.tensor(w))

    def forward(self, x, y=None):
        return x @ self.w


def judged(D, real, fake=None, step=0, real_logits=None, fake_logits=None):
    fake = real if fake is None else fake
    return Judged(D, real, fake, None, real_logits, fake_logits, step)


def test_r1_by_hand_with_its_gradient_and_lazy_schedule():
    D = Quadratic([1.0, 2.0])
    real = torch.tensor([[1.0, 1.0], [0.0, 3.0]])
    # ||2 w x||^2 = 4 (w1^2 x1^2 + w2^2 x2^2) = [20, 144] -> mean 82; gamma / 2 = 0.05
    penalty = R1(gamma=0.1)(judged(D, real))
    assert penalty.item() == pytest.approx(4.1)
    penalty.backward()  # d/dw_j of 0.05 mean(4 w_j^2 x_j^2) = 0.05 mean(8 w_j x_j^2)
    assert D.w.grad.tolist() == pytest.approx([0.2, 4.0])
    lazy = R1(gamma=0.1, every=4)
    assert lazy(judged(D, real, step=8)).item() == pytest.approx(4 * 4.1)
    assert lazy(judged(D, real, step=9)) is None


def test_gradient_penalty_by_hand_with_its_gradient():
    D = Linear([3.0, 4.0])  # ||dD/dx|| = 5 everywhere between real and fake
    penalty = GradientPenalty(weight=10.0)(judged(D, torch.randn(6, 2), torch.randn(6, 2)))
    assert penalty.item() == pytest.approx(10 * 16)
    penalty.backward()  # 10 * 2 (|w| - 1) w / |w|
    assert D.w.grad.tolist() == pytest.approx([48.0, 64.0])


def test_lecam_by_hand_and_its_moving_averages():
    real, fake = torch.tensor([2.0, 0.5, -1.0]), torch.tensor([-2.0, 0.0, 1.5])
    lecam = LeCam(weight=0.5, decay=0.9)
    value = lecam(judged(None, None, real_logits=real, fake_logits=fake))
    real_mean, fake_mean = 0.5, -0.5 / 3  # the first call starts the averages
    by_hand = sum(max(r - fake_mean, 0) ** 2 for r in real.tolist()) / 3
    by_hand += sum(max(real_mean - f, 0) ** 2 for f in fake.tolist()) / 3
    assert value.item() == pytest.approx(0.5 * by_hand)
    lecam(judged(None, None, real_logits=real + 1, fake_logits=fake - 1))
    expected = [0.9 * real_mean + 0.1 * 1.5, 0.9 * fake_mean + 0.1 * (fake_mean - 1)]
    assert lecam.means.tolist() == pytest.approx(expected)


def test_ada_probability_follows_the_sign_of_d_on_reals():
    ada = AdaptiveAugment(target=0.6, interval=2, images=100)
    confident = torch.ones(10)  # r = 1 > 0.6: D overfits, augment more
    ada.observe(confident)
    ada.adjust(d_step=0)
    assert ada.p.item() == 0.0  # adjusted every 2 steps only
    ada.observe(confident)
    ada.adjust(d_step=1)
    assert ada.p.item() == pytest.approx(10 * 2 / 100)
    for d_step in range(2, 6):
        ada.observe(-confident)  # r = -1 < 0.6: less
        ada.adjust(d_step)
    assert ada.p.item() == 0.0  # clamped at 0
    images = torch.rand(8, 1, 16, 16)
    assert torch.equal(ada(images), images)  # p = 0: untouched
    ada.p.fill_(1.0)
    assert not torch.equal(ada(images), images)


def test_a_resumed_ada_moves_p_at_the_same_updates_as_an_uninterrupted_one():
    signs = [1.0, 1.0, -1.0, 1.0, 1.0, -1.0, 1.0, 1.0]
    straight = AdaptiveAugment(target=0.0, interval=4, images=100)
    for d_step, sign in enumerate(signs):
        straight.observe(torch.full((10,), sign))
        straight.adjust(d_step)
    first = AdaptiveAugment(target=0.0, interval=4, images=100)
    for d_step, sign in enumerate(signs[:6]):  # stopped mid-interval, checkpointed
        first.observe(torch.full((10,), sign))
        first.adjust(d_step)
    resumed = AdaptiveAugment(target=0.0, interval=4, images=100)
    resumed.load_state_dict(first.state_dict())
    for d_step, sign in enumerate(signs[6:], start=6):
        resumed.observe(torch.full((10,), sign))
        resumed.adjust(d_step)
    assert straight.p.item() > 0
    assert torch.equal(resumed.p, straight.p) and torch.equal(resumed.signs, straight.signs)


def test_translation_moves_whole_pixels_and_passes_gradients():
    x = torch.zeros(16, 1, 16, 16)
    x[:, :, 8, 8] = 1.0
    x.requires_grad_(True)
    moved = translation(x)
    assert moved.sum().item() == pytest.approx(16)  # a 2-pixel shift keeps the centre inside
    assert set(moved.unique().tolist()) == {0.0, 1.0}
    where = moved.detach().flatten(1).argmax(1)
    rows, cols = where // 16, where % 16
    assert ((rows - 8).abs() <= 2).all() and ((cols - 8).abs() <= 2).all()
    assert len(set(zip(rows.tolist(), cols.tolist(), strict=True))) > 1
    moved.sum().backward()  # each image's bright pixel reached the output once
    assert x.grad[:, 0, 8, 8].tolist() == [1.0] * 16


def test_cutout_zeroes_a_quarter_and_diffaugment_keeps_shapes():
    out = cutout(torch.ones(4, 3, 16, 16))
    assert (out == 0).flatten(1).sum(1).tolist() == [3 * 64] * 4
    x = torch.rand(4, 3, 16, 16) * 2 - 1
    augmented = DiffAugment(["color", "translation", "cutout"])(x)
    assert augmented.shape == x.shape and not torch.equal(augmented, x)
    assert torch.equal(DiffAugment([])(x), x)


def test_packing_concatenates_m_samples_along_channels():
    seen = {}

    class Recorder(nn.Module):
        def forward(self, x, y=None):
            seen["x"], seen["y"] = x, y
            return x.flatten(1).sum(1)

    x, y = torch.randn(6, 3, 4, 4), torch.arange(6)
    logits = Packed(Recorder(), 2)(x, y)
    assert seen["x"].shape == (3, 6, 4, 4) and logits.shape == (3,)
    assert torch.equal(seen["x"][1], torch.cat([x[2], x[3]]))
    assert seen["y"].tolist() == [0, 2, 4]
    with pytest.raises(UserError, match="model.pack: 3 does not divide train.batch_size 64"):
        load_config(None, ["model.pack=3"])


def test_minibatch_stddev_groups_never_mix_real_and_fake():
    same, varied = torch.ones(4, 5), torch.randn(4, 5) * 7
    out = minibatch_stddev(torch.cat([same, varied]), group=4)
    assert out.shape == (8, 6)
    assert out[:4, -1].max() < 1e-3 and out[4:, -1].min() > 1.0
    maps = minibatch_stddev(torch.randn(8, 5, 4, 4), group=4)
    assert maps.shape == (8, 6, 4, 4)
    with pytest.raises(UserError, match="groups of 3 do not divide the 64 samples"):
        load_config(None, ["model.minibatch_stddev=3"])


def test_mode_seeking_rewards_images_that_differ_as_their_latents_do():
    gan = SimpleNamespace(
        latents=lambda n: (torch.randn(n, 4), None), g_bare=lambda z, y: 3 * z.view(-1, 1, 2, 2)
    )
    assert ModeSeeking(weight=2.0, pairs=8)(gan, 0).item() == pytest.approx(2 / 3, rel=1e-4)
