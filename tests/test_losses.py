"""Every adversarial loss against values computed by hand on three logits."""

import math

import pytest
import torch

from pipeline.train.losses import (
    HINGE,
    LEAST_SQUARES,
    NON_SATURATING,
    WASSERSTEIN,
    adversarial_loss,
)

REAL = torch.tensor([2.0, 0.5, -1.0])
FAKE = torch.tensor([-2.0, 0.0, 1.5])


def softplus(v: float) -> float:
    return math.log1p(math.exp(v))


def test_hinge_by_hand():
    # relu(1 - real) = [0, 0.5, 2] -> 5/6 ; relu(1 + fake) = [0, 1, 2.5] -> 7/6
    assert HINGE.d_loss(REAL, FAKE).item() == pytest.approx(5 / 6 + 7 / 6)
    assert HINGE.g_loss(FAKE, None).item() == pytest.approx(-(-2.0 + 0.0 + 1.5) / 3)


def test_non_saturating_by_hand():
    d = sum(softplus(-r) for r in REAL.tolist()) / 3 + sum(softplus(f) for f in FAKE.tolist()) / 3
    g = sum(softplus(-f) for f in FAKE.tolist()) / 3
    assert NON_SATURATING.d_loss(REAL, FAKE).item() == pytest.approx(d)
    assert NON_SATURATING.g_loss(FAKE, None).item() == pytest.approx(g)


def test_wasserstein_by_hand():
    # mean real = 0.5, mean fake = -0.5/3
    assert WASSERSTEIN.d_loss(REAL, FAKE).item() == pytest.approx(-0.5 / 3 - 0.5)
    assert WASSERSTEIN.g_loss(FAKE, None).item() == pytest.approx(0.5 / 3)


def test_least_squares_by_hand():
    # (real - 1)^2 = [1, 0.25, 4]; fake^2 = [4, 0, 2.25]; (fake - 1)^2 = [9, 1, 0.25]
    d = 0.5 * (5.25 / 3 + 6.25 / 3)
    assert LEAST_SQUARES.d_loss(REAL, FAKE).item() == pytest.approx(d)
    assert LEAST_SQUARES.g_loss(FAKE, None).item() == pytest.approx(0.5 * 10.25 / 3)


def test_relativistic_average_by_hand():
    loss = adversarial_loss("nonsat", is_relativistic=True)
    assert loss.uses_real_in_g and not adversarial_loss("nonsat", False).uses_real_in_g
    real_vs_fake = [r - FAKE.mean().item() for r in REAL.tolist()]
    fake_vs_real = [f - REAL.mean().item() for f in FAKE.tolist()]
    d = sum(softplus(-v) for v in real_vs_fake) / 3 + sum(softplus(v) for v in fake_vs_real) / 3
    g = sum(softplus(-v) for v in fake_vs_real) / 3 + sum(softplus(v) for v in real_vs_fake) / 3
    assert loss.d_loss(REAL, FAKE).item() == pytest.approx(d)
    assert loss.g_loss(FAKE, REAL).item() == pytest.approx(g)
