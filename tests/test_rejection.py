"""Discriminator rejection sampling: the acceptance rule against closed-form densities, the
critic's fine-tuning on real shards, and the `ganpipe eval` / `ganpipe sample` path."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import yaml
from torch import nn

from pipeline.config import RejectionConfig, load_config
from pipeline.errors import UserError
from pipeline.rejection import fit_critic, rejection_sample
from tests.conftest import ganpipe


class Identity(nn.Module):
    """A 'generator' whose samples are its latents: p_G = N(0, I); conditional ones append
    their label as a second coordinate."""

    def __init__(self, z_dim: int = 1, n_classes: int = 0):
        super().__init__()
        self.z_dim, self.n_classes = z_dim, n_classes

    def forward(self, z, y=None):
        return z if y is None else torch.cat([z, y[:, None].float()], dim=1)


class LogRatio(nn.Module):
    """The exact log(p_data / p_G) for p_data = N(0, std^2), p_G = N(0, 1), up to a constant."""

    def __init__(self, std: float):
        super().__init__()
        self.std = std

    def forward(self, x, y=None):
        return (x[:, :1] ** 2 * (0.5 - 0.5 / self.std**2)).sum(1, keepdim=True)


@pytest.mark.parametrize(
    ("temperature", "expected_std"),
    [(1.0, 0.5), (0.5, (1 / 7) ** 0.5)],  # exp(-x^2/2) * exp(-1.5 x^2)^2 = exp(-3.5 x^2)
)
def test_kept_samples_follow_the_ratio_raised_to_one_over_the_temperature(
    temperature, expected_std
):
    samples, labels, acceptance = rejection_sample(
        Identity(), LogRatio(0.5), 20_000, seed=3, temperature=temperature
    )
    assert samples.shape == (20_000, 1) and labels is None
    assert samples.std().item() == pytest.approx(expected_std, abs=0.015)
    assert 0 < acceptance < 1


def test_rejection_sampling_is_reproducible_and_keeps_labels_with_their_samples():
    generator = Identity(n_classes=3)
    first = rejection_sample(generator, LogRatio(0.5), 600, seed=1, temperature=1.0)
    again = rejection_sample(generator, LogRatio(0.5), 600, seed=1, temperature=1.0)
    other = rejection_sample(generator, LogRatio(0.5), 600, seed=2, temperature=1.0)
    samples, labels, _ = first
    assert torch.equal(samples, again[0]) and not torch.equal(samples, other[0])
    assert torch.equal(samples[:, 1].long(), labels)  # each label stayed with its sample
    assert set(labels.tolist()) == {0, 1, 2}


class HalfOffMode(nn.Module):
    """Half its samples on the ring's means, half at the origin (no data there)."""

    z_dim, n_classes = 2, 0

    def forward(self, z, y=None):
        angle = torch.floor(z[:, 0].abs() * 8) * (2 * torch.pi / 8)
        on_ring = torch.stack([angle.cos(), angle.sin()], dim=1)
        return torch.where((z[:, 1] > 0)[:, None], on_ring, torch.zeros_like(on_ring))


def test_the_critic_learns_where_the_generator_misses_the_data(ring):
    discriminator = nn.Sequential(nn.Linear(2, 64), nn.LeakyReLU(0.2), nn.Linear(64, 1))

    class D(nn.Module):
        def __init__(self):
            super().__init__()
            self.body = discriminator

        def forward(self, x, y=None):
            return self.body(x)

    settings = RejectionConfig(critic_steps=300, critic_batch=256, critic_lr=2e-3)
    critic = fit_critic(D(), HalfOffMode(), ring, settings, seed=0)
    with torch.no_grad():
        on_mode = critic(torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])).mean()
        origin = critic(torch.zeros(1, 2)).mean()
    assert on_mode > origin + 1.0


def test_packed_discriminators_cannot_reject(tmp_path):
    with pytest.raises(UserError, match="rejection.temperature"):
        load_config(None, ["model.pack=2", "train.batch_size=64", "rejection.temperature=1"])


@pytest.mark.slow
def test_eval_and_sample_reject_with_a_critic_fitted_once_per_checkpoint(ring, tmp_path):
    config = tmp_path / "ring.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "data": {"dir": str(ring)},
                "model": {"family": "mlp", "width": 64, "d_width": 64, "z_dim": 4},
                "train": {
                    "steps": 1000,
                    "batch_size": 128,
                    "loss": "nonsat",
                    "lr_g": 1e-3,
                    "lr_d": 5e-3,
                    "betas_g": [0.5, 0.999],
                    "betas_d": [0.5, 0.999],
                    "eval_every": 1000,
                    "ema_decay": 0.0,
                    "sample_every": 1000,
                },
                "regularize": {"r1": 0.05},
                "eval": {"n_samples": 2500},
                "tracking": {"wandb": False},
            }
        )
    )
    run = tmp_path / "run"
    ganpipe("train", "--config", config, "--run-dir", run)
    plain = json.loads(ganpipe("eval", "--run", run).stdout)
    assert "rejection" not in plain["protocol"]
    ganpipe("sample", "--run", run, "--n", 2500, "--out", tmp_path / "plain.npz")

    saved = yaml.safe_load((run / "config.yaml").read_text())
    saved["rejection"] = {"temperature": 1.0, "critic_steps": 300, "critic_batch": 256}
    (run / "config.yaml").write_text(yaml.safe_dump(saved))
    rejected = json.loads(ganpipe("eval", "--run", run).stdout)
    critic_file = run / "critic" / "step-00001000.pt"
    fitted_at = critic_file.stat().st_mtime_ns
    assert 0 < rejected["protocol"]["rejection"]["acceptance"] < 1
    assert json.loads(ganpipe("eval", "--run", run).stdout) == rejected  # same critic, reused
    assert critic_file.stat().st_mtime_ns == fitted_at

    plain_again = json.loads(ganpipe("eval", "--run", run, "--temperature", 0).stdout)
    assert plain_again == plain  # the temperature is a sampling choice: 0 turns rejection off

    printed = ganpipe("sample", "--run", run, "--n", 2500, "--out", tmp_path / "kept.npz").stdout
    assert "rejection sampling kept" in printed
    kept = np.load(tmp_path / "kept.npz")
    assert kept["samples"].shape == (2500, 2) and 0 < kept["acceptance"] < 1
    assert not np.array_equal(kept["samples"], np.load(tmp_path / "plain.npz")["samples"])
    # Whether rejection helps this undertrained generator depends on how its 1000 steps went
    # (one in four seeds it does not): what the critic learns is tested above, on generators
    # whose misses are known.
