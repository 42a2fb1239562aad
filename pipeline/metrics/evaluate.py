"""Evaluate a generator with the protocol that fits its dataset; every result carries the
protocol it was measured with (BENCHMARKS.md sections 1 and 3)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torchmetrics.image.fid import FrechetInceptionDistance

from pipeline.data.reader import load_split
from pipeline.errors import UserError
from pipeline.metrics.classifier import VERSION, digit_classifier
from pipeline.metrics.mixtures import mixture_metrics
from pipeline.metrics.prdc import prdc
from pipeline.metrics.stacked import stacked_metrics
from pipeline.sampling import generate


def supported(index: dict[str, Any]) -> bool:
    """Whether this dataset has an evaluation protocol (a feature extractor) yet."""
    return index["kind"] == "points" or index["source"] in ("digits", "stacked-digits")


def require_supported(data_dir: str | Path, index: dict[str, Any]) -> None:
    if not supported(index):
        raise UserError(f"{data_dir}: no feature extractor for source {index['source']!r} yet")


def evaluate(
    generator: nn.Module,
    data_dir: str | Path,
    index: dict[str, Any],
    n: int,
    seed: int = 0,
    batch_size: int = 500,
    device: str | torch.device = "cpu",
    truncation: float = 0.0,
) -> dict[str, Any]:
    """`n` samples of `generator` (seeded), measured with the dataset's protocol."""
    require_supported(data_dir, index)
    samples, labels = generate(generator, n, seed, batch_size, device, truncation)
    result = measure(samples, labels, data_dir, index, seed)
    result["protocol"]["truncation"] = truncation
    return result


def measure(
    samples: torch.Tensor,
    labels: torch.Tensor | None,
    data_dir: str | Path,
    index: dict[str, Any],
    seed: int,
) -> dict[str, Any]:
    """Metrics of samples already drawn (`seed` is recorded with them)."""
    if index["kind"] == "points":
        mix = index["mixture"]
        result = mixture_metrics(samples, np.asarray(mix["means"]), mix["std"])
        result["protocol"] = {"benchmark": index["source"], "n_generated": len(samples)}
    elif index["source"] == "stacked-digits":
        result = stacked_metrics(samples, index["shape"][-1])
    else:
        return digits_metrics(samples, data_dir, index, seed, labels)
    result["protocol"]["seed"] = seed
    return result


class _Precomputed(nn.Module):
    """Lets torchmetrics' FID take features we already computed (they are reused for PRDC)."""

    def __init__(self, num_features: int):
        super().__init__()
        self.num_features = num_features

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return features


def frechet_distance(real: torch.Tensor, fake: torch.Tensor) -> float:
    # Features are already complete on this process: no cross-rank sync (it would deadlock
    # when only the main process evaluates).
    fid = FrechetInceptionDistance(feature=_Precomputed(real.shape[1]), sync_on_compute=False)
    fid.update(real.double(), real=True)
    fid.update(fake.double(), real=False)
    return float(fid.compute())


def digits_metrics(
    samples: torch.Tensor,
    data_dir: str | Path,
    index: dict[str, Any],
    seed: int,
    labels: torch.Tensor | None = None,
) -> dict[str, Any]:
    """digits-FID against the held-out split, beside the real-vs-real floor; PRDC (k=5) and
    the predicted-digit histogram in the same feature space. For a conditional generator
    (`labels` given), also how often the classifier reads the digit that was asked for."""
    resolution = index["shape"][-1]
    classifier, accuracy = digit_classifier(resolution)
    reference, _ = load_split(data_dir, "test")
    train, _ = load_split(data_dir, "train")
    with torch.no_grad():
        ref_f, train_f = classifier.features(reference), classifier.features(train)
        fake_f = torch.cat([classifier.features(b) for b in samples.split(1000)])
        predicted = torch.cat([classifier.head(f) for f in fake_f.split(1000)]).argmax(1)
    fid, floor = frechet_distance(ref_f, fake_f), frechet_distance(ref_f, train_f)
    histogram = torch.bincount(predicted, minlength=10).double()
    share = histogram / histogram.sum()
    entropy = -(share[share > 0] * share[share > 0].log()).sum().item()
    conditioning = (
        {} if labels is None else {"class_accuracy": (predicted == labels).float().mean().item()}
    )
    return {
        "fid": fid,
        "fid_floor": floor,
        "fid_ratio": fid / floor,
        **prdc(ref_f, fake_f[: len(ref_f)], k=5),
        "digits_covered": int((histogram > 0).sum()),
        "digit_histogram": histogram.long().tolist(),
        "digit_entropy_ratio": entropy / math.log(10),
        **conditioning,
        "protocol": {
            "metric": "digits-FID (torchmetrics FID on digit-classifier features)",
            "extractor": f"digit-classifier-v{VERSION} at {resolution}px, "
            f"held-out accuracy {accuracy:.4f}",
            "n_generated": len(samples),
            "reference": f"held-out test split, {len(reference)} images",
            "floor": f"training split ({len(train)} images) vs the same reference",
            "prdc": f"k=5, {len(ref_f)} generated vs {len(ref_f)} reference",
            "seed": seed,
        },
    }
