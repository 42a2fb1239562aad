"""Evaluate generated samples with the protocol that fits their dataset (BENCHMARKS.md
sections 1-3). Every result carries the protocol it was measured with.

Evaluation runs in two halves so that it can be shared by processes: `summarize` turns each
process's samples into rows (2D points, mode ids or features: the expensive half), the rows
are gathered, and `score` measures them all on one process.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pipeline.data.reader import read_index
from pipeline.metrics.extractors import DigitFeatures, Extractor, extractor_for
from pipeline.metrics.fidelity import frechet_distance, inception_score, kernel_distance
from pipeline.metrics.mixtures import mixture_metrics
from pipeline.metrics.prdc import prdc
from pipeline.metrics.reference import dataset_hash, reference_features
from pipeline.metrics.stacked import mode_of, stacked_metrics, stacked_modes

BATCH = 500


class Protocol:
    """How one dataset's samples are measured."""

    def __init__(
        self,
        data_dir: str | Path,
        index: dict[str, Any],
        extractor: str = "auto",
        inception_weights: str | Path | None = None,
        device: torch.device | str = "cpu",
    ):
        self.data_dir, self.index, self.device = Path(data_dir), index, device
        self.kind = "points" if index["kind"] == "points" else index["source"]
        self.extractor: Extractor | None = None
        if self.kind == "stacked-digits":
            self.extractor = DigitFeatures(index["shape"][-1], device)
        elif self.kind != "points":
            self.extractor = extractor_for(index, extractor, inception_weights, device)

    @torch.no_grad()
    def summarize(self, samples: torch.Tensor) -> torch.Tensor:
        """Per-sample rows on the CPU: points, stacked-digit modes, or extractor features."""
        if len(samples) == 0:  # a rank with no batch to draw
            return samples
        if self.extractor is None:
            return samples.double()
        if self.kind == "stacked-digits":
            return torch.cat([stacked_modes(self.extractor, b) for b in samples.split(BATCH)])
        return self.features(samples)

    def features(self, images: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.extractor.features(b).cpu() for b in images.split(BATCH)])

    @torch.no_grad()
    def monitor_rows(self, samples: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """What the collapse guard compares (on the CPU): features and, for labelled data,
        each sample's class (nearest mixture mode, digit, or stacked-digit triple)."""
        if len(samples) == 0:  # a rank with no batch to draw
            return samples, samples.long()
        if self.kind == "points":
            means = torch.as_tensor(self.index["mixture"]["means"], dtype=torch.float64)
            return samples.double(), torch.cdist(samples.double(), means).argmin(1)
        if self.kind == "stacked-digits":  # the three digits' features side by side
            planes = [self.features(samples[:, k : k + 1]) for k in range(3)]
            digits = [self.extractor.logits(p).argmax(1).cpu() for p in planes]
            return torch.cat(planes, dim=1), mode_of(digits)
        features = self.features(samples)
        if isinstance(self.extractor, DigitFeatures):
            return features, self.extractor.logits(features).argmax(1).cpu()
        return features, None

    def classes(self) -> int:
        """How many classes `monitor_rows` tells apart (0: none)."""
        if self.kind == "points":
            return len(self.index["mixture"]["means"])
        if self.kind == "stacked-digits":
            return 1000
        return 10 if isinstance(self.extractor, DigitFeatures) else 0

    def score(
        self, rows: torch.Tensor, labels: torch.Tensor | None = None, seed: int = 0
    ) -> dict[str, Any]:
        if self.kind == "points":
            mixture = self.index["mixture"]
            result = mixture_metrics(rows, np.asarray(mixture["means"]), mixture["std"])
            result["protocol"] = {"benchmark": self.index["source"], "n_generated": len(rows)}
        elif self.kind == "stacked-digits":
            result = stacked_metrics(rows, self.extractor)
        else:
            result = self.image_metrics(rows, labels, seed)
        result["protocol"]["seed"] = seed
        return result

    def measure(
        self, samples: torch.Tensor, labels: torch.Tensor | None = None, seed: int = 0
    ) -> dict[str, Any]:
        """Both halves on this process."""
        return self.score(self.summarize(samples), labels, seed)

    def image_metrics(
        self, fake: torch.Tensor, labels: torch.Tensor | None, seed: int
    ) -> dict[str, Any]:
        """FID and KID against the reference split (the held-out split when there is one),
        IS, and PRDC on equal numbers of real and generated features. When the dataset has a
        held-out split, the training split's FID against it is the floor."""
        extractor = self.extractor
        splits = self.index["splits"]
        reference_split = "test" if splits.get("test", {}).get("samples") else "train"
        real = reference_features(self.data_dir, reference_split, extractor)
        kid, kid_std = kernel_distance(real, fake, seed)
        logits = extractor.logits(fake.to(self.device)).cpu()
        score, score_std = inception_score(logits, seed)
        paired = min(len(real), len(fake))
        result: dict[str, Any] = {
            "fid": frechet_distance(real, fake),
            "kid": kid,
            "kid_std": kid_std,
            "inception_score": score,
            "inception_score_std": score_std,
            **prdc(real[:paired].to(self.device), fake[:paired].to(self.device)),
        }
        floor_text = None
        if reference_split == "test":
            train = reference_features(self.data_dir, "train", extractor)
            result["fid_floor"] = frechet_distance(real, train)
            result["fid_ratio"] = result["fid"] / result["fid_floor"]
            floor_text = f"training split ({len(train)} images) vs the same reference"
        if isinstance(extractor, DigitFeatures):
            result.update(digit_histogram(logits, labels))
        result["protocol"] = {
            "metric": "FID, KID, IS (torchmetrics) and PRDC on the extractor's features",
            **extractor.describe(),
            "n_generated": len(fake),
            "reference": f"{reference_split} split, {len(real)} images, "
            f"dataset {dataset_hash(self.data_dir)}",
            "floor": floor_text,
            "kid": f"{min(1000, paired)} per subset, 100 subsets, cubic polynomial kernel",
            "inception_score": "10 splits",
            "prdc": f"precision/recall k=3, density/coverage k=5, {paired} generated vs "
            f"{paired} reference",
        }
        return result


def normalised_entropy(classes: torch.Tensor, n_classes: int) -> float:
    """Entropy of the class histogram over its maximum, log(n_classes): 1 when uniform."""
    histogram = torch.bincount(classes.long(), minlength=n_classes).double()
    share = histogram[histogram > 0] / histogram.sum()
    return -(share * share.log()).sum().item() / math.log(n_classes)


def digit_histogram(logits: torch.Tensor, labels: torch.Tensor | None) -> dict[str, Any]:
    """The predicted-digit histogram and its entropy; for a conditional generator (`labels`
    given) how often the classifier reads the digit that was asked for."""
    predicted = logits.argmax(1)
    histogram = torch.bincount(predicted, minlength=10)
    result = {
        "digits_covered": int((histogram > 0).sum()),
        "digit_histogram": histogram.tolist(),
        "digit_entropy_ratio": normalised_entropy(predicted, 10),
    }
    if labels is not None:
        result["class_accuracy"] = (predicted == labels).float().mean().item()
    return result


def measure(
    samples: torch.Tensor,
    labels: torch.Tensor | None,
    data_dir: str | Path,
    index: dict[str, Any] | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    """Metrics of samples already drawn, with the dataset's default protocol."""
    protocol = Protocol(data_dir, index or read_index(data_dir))
    return protocol.measure(samples, labels, seed)
