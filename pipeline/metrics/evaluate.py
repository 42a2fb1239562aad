"""Evaluate generated samples with the protocol that fits their dataset (BENCHMARKS.md
sections 1-3). One protocol per kind of data, chosen once: it measures, sums a measurement
up in a line, names the figure the best checkpoint is picked by, and draws the samples.
Every result carries the protocol it was measured with.

Evaluation runs in two halves so that it can be shared by processes: `summarize` turns each
process's samples into rows (2D points, mode ids or features: the expensive half), the rows
are gathered, and `score` measures them all on one process.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from torch import nn

from pipeline.data.description import Dataset, read_dataset
from pipeline.metrics.extractors import DigitFeatures, Extractor, extractor_for
from pipeline.metrics.fidelity import frechet_distance, inception_score, kernel_distance
from pipeline.metrics.mixtures import mixture_metrics
from pipeline.metrics.prdc import prdc
from pipeline.metrics.reference import dataset_hash, reference_features
from pipeline.metrics.stacked import mode_of, stacked_metrics, stacked_modes
from pipeline.sampling import generate
from pipeline.visual import image_grid, scatter

BATCH = 500
POINTS_PICTURED = 2500


class Protocol:
    """How one dataset's samples are measured and shown."""

    classes = 0  # the classes `monitor_rows` tells apart (0: none)
    measures = True  # False: samples are drawn, not measured

    def __init__(self, dataset: Dataset):
        self.dataset = dataset

    def summarize(self, samples: torch.Tensor) -> torch.Tensor:
        """Per-sample rows on the CPU: what `score` measures."""
        raise NotImplementedError

    def monitor_rows(self, samples: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """What the collapse guard compares (on the CPU): features and, where the protocol
        tells classes apart, each sample's class."""
        raise NotImplementedError

    def score(
        self, rows: torch.Tensor, labels: torch.Tensor | None = None, seed: int = 0
    ) -> dict[str, Any]:
        raise NotImplementedError

    def headline(self, metrics: dict[str, Any]) -> str:
        """The measurement in one line."""
        raise NotImplementedError

    def key_figure(self, metrics: dict[str, Any]) -> float:
        """What the best checkpoint is picked by: lower is better."""
        raise NotImplementedError

    def picture(self, generator: nn.Module, seed: int, grid_size: int, device) -> Image.Image:
        """`grid_size` samples in a grid (2D points override this)."""
        return grid_of(generator, seed, grid_size, device)

    def measure(
        self, samples: torch.Tensor, labels: torch.Tensor | None = None, seed: int = 0
    ) -> dict[str, Any]:
        """Both halves on this process."""
        return self.score(self.summarize(samples), labels, seed)


class PointsProtocol(Protocol):
    """2D mixtures: modes reached, high-quality share, reverse KL (BENCHMARKS.md section 1)."""

    def __init__(self, dataset: Dataset):
        super().__init__(dataset)
        self.means = torch.as_tensor(dataset.mixture.means, dtype=torch.float64)
        self.classes = len(self.means)

    def summarize(self, samples: torch.Tensor) -> torch.Tensor:
        return samples.double()

    def monitor_rows(self, samples: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        points = samples.double()
        return points, torch.cdist(points, self.means).argmin(1)

    def score(self, rows, labels=None, seed=0) -> dict[str, Any]:
        result = mixture_metrics(rows, self.means.numpy(), self.dataset.mixture.std)
        result["protocol"] = {"benchmark": self.dataset.source, "n_generated": len(rows),
                              "seed": seed}  # fmt: skip
        return result

    def headline(self, metrics: dict[str, Any]) -> str:
        return (
            f"modes {metrics['modes']}/{metrics['modes_total']}, high-quality "
            f"{metrics['high_quality_percent']:.1f}%, reverse KL {metrics['reverse_kl']:.4f}"
        )

    def key_figure(self, metrics: dict[str, Any]) -> float:
        return metrics["reverse_kl"]

    def picture(self, generator, seed, grid_size, device) -> Image.Image:
        points, _ = generate(generator, POINTS_PICTURED, seed, device=device)
        return scatter(points, means=self.means.numpy())


class StackedDigitsProtocol(Protocol):
    """Stacked digits: the 1000 digit triples reached and reverse KL (BENCHMARKS.md section 2);
    the digit classifier reads each channel."""

    classes = 1000

    def __init__(self, dataset: Dataset, device):
        super().__init__(dataset)
        self.extractor = DigitFeatures(dataset.resolution, device)

    def summarize(self, samples: torch.Tensor) -> torch.Tensor:
        if len(samples) == 0:  # a rank with no batch to draw
            return samples
        return torch.cat([stacked_modes(self.extractor, b) for b in samples.split(BATCH)])

    @torch.no_grad()
    def monitor_rows(self, samples: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        if len(samples) == 0:
            return samples, samples.long()
        planes = [features(self.extractor, samples[:, k : k + 1]) for k in range(3)]
        digits = [self.extractor.logits(p).argmax(1).cpu() for p in planes]
        return torch.cat(planes, dim=1), mode_of(digits)  # the three digits' features

    def score(self, rows, labels=None, seed=0) -> dict[str, Any]:
        result = stacked_metrics(rows, self.extractor)
        result["protocol"]["seed"] = seed
        return result

    def headline(self, metrics: dict[str, Any]) -> str:
        return (
            f"modes {metrics['modes']}/{metrics['modes_total']}, "
            f"reverse KL {metrics['reverse_kl']:.4f}"
        )

    def key_figure(self, metrics: dict[str, Any]) -> float:
        return metrics["reverse_kl"]


class ImageProtocol(Protocol):
    """Images: FID and KID against the held-out split (the training split when there is
    none), IS, and PRDC, all in the extractor's feature space."""

    def __init__(self, dataset: Dataset, extractor: Extractor, device):
        super().__init__(dataset)
        self.extractor, self.device = extractor, device

    @torch.no_grad()
    def summarize(self, samples: torch.Tensor) -> torch.Tensor:
        if len(samples) == 0:  # a rank with no batch to draw
            return samples
        return features(self.extractor, samples)

    @torch.no_grad()
    def monitor_rows(self, samples: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        return self.summarize(samples), None

    def score(self, rows, labels=None, seed=0) -> dict[str, Any]:
        """When the dataset has a held-out split, the training split's FID against it is the
        floor."""
        extractor, fake = self.extractor, rows
        reference_split = "test" if self.dataset.samples("test") else "train"
        real = reference_features(self.dataset.dir, reference_split, extractor)
        kid, kid_std = kernel_distance(real, fake, seed)
        paired = min(len(real), len(fake))
        result: dict[str, Any] = {
            "fid": frechet_distance(real, fake),
            "kid": kid,
            "kid_std": kid_std,
            **prdc(real[:paired].to(self.device), fake[:paired].to(self.device)),
        }
        logits = None
        if extractor.has_logits:  # the Inception Score needs the network's classifier
            logits = extractor.logits(fake.to(self.device)).cpu()
            score, score_std = inception_score(logits, seed)
            result.update(inception_score=score, inception_score_std=score_std)
        floor_text = None
        if reference_split == "test":
            train = reference_features(self.dataset.dir, "train", extractor)
            result["fid_floor"] = frechet_distance(real, train)
            result["fid_ratio"] = result["fid"] / result["fid_floor"]
            floor_text = f"training split ({len(train)} images) vs the same reference"
        result.update(self.classes_read(logits, labels))
        result["protocol"] = {
            "metric": "FID, KID, IS (torchmetrics) and PRDC on the extractor's features",
            **extractor.describe(),
            "n_generated": len(fake),
            "reference": f"{reference_split} split, {len(real)} images, "
            f"dataset {dataset_hash(self.dataset.dir)}",
            "floor": floor_text,
            "kid": f"{min(1000, paired)} per subset, 100 subsets, cubic polynomial kernel",
            "inception_score": "10 splits"
            if extractor.has_logits
            else "not reported: the network has no classification layer",
            "prdc": f"precision/recall k=3, density/coverage k=5, {paired} generated vs "
            f"{paired} reference",
            "seed": seed,
        }
        return result

    def classes_read(self, logits: torch.Tensor, labels: torch.Tensor | None) -> dict[str, Any]:
        """What the extractor's classes say of the samples (nothing without a classifier)."""
        return {}

    def headline(self, metrics: dict[str, Any]) -> str:
        floor = f" (floor {metrics['fid_floor']:.3f})" if "fid_floor" in metrics else ""
        return (
            f"FID {metrics['fid']:.3f}{floor}, KID {metrics['kid']:.4f}, "
            f"precision {metrics['precision']:.3f}, recall {metrics['recall']:.3f}"
        )

    def key_figure(self, metrics: dict[str, Any]) -> float:
        return metrics["fid"]


class DigitsProtocol(ImageProtocol):
    """Digit images (the digit classifier's features): also the digits the samples read as,
    and for a conditional generator how often it drew the digit asked for."""

    classes = 10

    @torch.no_grad()
    def monitor_rows(self, samples: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        if len(samples) == 0:  # a rank with no batch to draw
            return samples, samples.long()
        rows = self.summarize(samples)
        return rows, self.extractor.logits(rows).argmax(1).cpu()

    def classes_read(self, logits: torch.Tensor, labels: torch.Tensor | None) -> dict[str, Any]:
        return digit_histogram(logits, labels)

    def headline(self, metrics: dict[str, Any]) -> str:
        return super().headline(metrics) + f", digits {metrics['digits_covered']}/10"


class UnmeasuredImages(Protocol):
    """Images with no feature extractor on this machine: drawn, not measured."""

    measures = False


def grid_of(generator: nn.Module, seed: int, grid_size: int, device) -> Image.Image:
    """`grid_size` samples, a column per class for a conditional generator."""
    images, _ = generate(generator, grid_size, seed, device=device)
    return image_grid(images, columns=generator.n_classes or None)


def protocol_for(
    dataset: Dataset,
    extractor: str = "auto",
    inception_weights: str | Path | None = None,
    device: torch.device | str = "cpu",
) -> Protocol:
    """The protocol of the dataset's kind of data."""
    if not dataset.images:
        return PointsProtocol(dataset)
    if dataset.source == "stacked-digits":
        return StackedDigitsProtocol(dataset, device)
    chosen = extractor_for(dataset, extractor, inception_weights, device)
    if isinstance(chosen, DigitFeatures):
        return DigitsProtocol(dataset, chosen, device)
    return ImageProtocol(dataset, chosen, device)


def features(extractor: Extractor, images: torch.Tensor) -> torch.Tensor:
    return torch.cat([extractor.features(b).cpu() for b in images.split(BATCH)])


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
    seed: int = 0,
) -> dict[str, Any]:
    """Metrics of samples already drawn, with the dataset's default protocol."""
    return protocol_for(read_dataset(data_dir)).measure(samples, labels, seed)
