import math

import numpy as np
import pytest
import torch

from pipeline.data.sources import mixture
from pipeline.metrics.classifier import MIN_ACCURACY, digit_classifier
from pipeline.metrics.evaluate import digits_metrics, frechet_distance
from pipeline.metrics.mixtures import mixture_metrics
from pipeline.metrics.prdc import prdc


def test_true_ring_samples_score_the_ceiling():
    mix = mixture("mog-ring")
    points, _ = mix.sample(2500, np.random.default_rng(0))
    result = mixture_metrics(torch.from_numpy(points), mix.means, mix.std)
    assert result["modes"] == 8
    assert 98.0 < result["high_quality_percent"] < 99.6  # 1 - exp(-4.5) = 98.9%
    assert result["reverse_kl"] < 0.01


def test_collapsed_samples_score_one_mode():
    mix = mixture("mog-grid")
    points = torch.tensor(mix.means[[3]]).repeat(100, 1) + 0.01
    result = mixture_metrics(points, mix.means, mix.std)
    assert result["modes"] == 1 and result["modes_total"] == 25
    assert result["reverse_kl"] == pytest.approx(math.log(25))
    far = mixture_metrics(torch.full((10, 2), 1.0), mix.means, mix.std)  # between means
    assert far["high_quality_percent"] == 0 and far["modes"] == 0


def test_prdc_identical_and_disjoint_sets():
    real = torch.randn(200, 8)
    same = prdc(real, real.clone(), k=5)
    assert same["precision"] == 1 and same["recall"] == 1 and same["coverage"] == 1
    assert same["density"] == pytest.approx(1.0, abs=0.2)
    apart = prdc(real, real + 100.0, k=5)
    assert apart == {"precision": 0, "recall": 0, "density": 0, "coverage": 0}


def test_prdc_sees_collapse_as_low_recall():
    real = torch.randn(300, 4)
    collapsed = real[:3].repeat(100, 1) + 1e-3 * torch.randn(300, 4)  # 3 of 300 points
    result = prdc(real, collapsed, k=5)
    assert result["precision"] > 0.9 and result["recall"] < 0.5 and result["coverage"] < 0.3


def test_frechet_distance_is_zero_for_same_statistics_and_grows_with_a_shift():
    features = torch.randn(500, 6, dtype=torch.float64)
    assert frechet_distance(features, features) == pytest.approx(0.0, abs=1e-6)
    assert frechet_distance(features, features + 1.0) == pytest.approx(6.0, rel=1e-3)


def test_digit_classifier_is_accurate_and_cached():
    model, accuracy = digit_classifier(16)
    assert accuracy >= MIN_ACCURACY
    again, cached = digit_classifier(16)
    assert cached == accuracy
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor, again.state_dict()[name])


def test_class_accuracy_reads_the_digit_that_was_asked_for(digits16):
    from pipeline.data.reader import load_split, read_index

    images, labels = load_split(digits16, "test")
    index = read_index(digits16)
    right = digits_metrics(images, digits16, index, seed=0, labels=labels)
    wrong = digits_metrics(images, digits16, index, seed=0, labels=(labels + 1) % 10)
    assert right["class_accuracy"] > 0.95 and wrong["class_accuracy"] < 0.05
    assert "class_accuracy" not in digits_metrics(images, digits16, index, seed=0)
