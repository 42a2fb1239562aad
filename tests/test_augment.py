import random

import torch

from pipeline.config import AugmentConfig
from pipeline.data.augment import active, augment, random_resized_crop, rotate
from pipeline.data.reader import training_batches


def test_off_by_default():
    assert not active(AugmentConfig())
    x = torch.rand(1, 8, 8)
    assert torch.equal(augment(x, AugmentConfig(), random.Random(0)), x)


def test_flip_happens_about_half_the_time():
    x = torch.arange(16.0).reshape(1, 4, 4)
    rng = random.Random(0)
    flips = sum(
        torch.equal(augment(x, AugmentConfig(flip=True), rng), x.flip(-1)) for _ in range(400)
    )
    assert 150 < flips < 250


def test_rotation_by_a_right_angle_matches_rot90():
    x = torch.rand(1, 6, 6)
    assert torch.allclose(rotate(x, 90.0), torch.rot90(x, 1, dims=(1, 2)), atol=1e-5)
    assert torch.allclose(rotate(x, 0.0), x, atol=1e-6)


def test_crop_keeps_shape_and_range():
    x = torch.rand(3, 16, 16) * 2 - 1
    rng = random.Random(1)
    for _ in range(20):
        y = random_resized_crop(x, 0.3, rng)
        assert y.shape == x.shape and y.min() >= -1.0001 and y.max() <= 1.0001


def test_augmented_stream_is_seeded(digits16):
    config = AugmentConfig(flip=True, crop_scale=0.6, rotate=15.0)

    def first(seed):
        return next(training_batches(digits16, 8, seed=seed, augment=config)).x

    assert torch.equal(first(3), first(3))
    plain = next(training_batches(digits16, 8, seed=3)).x
    assert not torch.equal(first(3), plain)
