"""Feature extractors behind one interface: images in [-1, 1] -> features, and class logits
read from those features where the network has a classifier (for the Inception Score and
class histograms; `has_logits`).

- `DigitFeatures`: the project's digit classifier (pipeline/metrics/classifier.py), trained
  on the bundled digits; the extractor of every digit dataset.
- InceptionV3 (pipeline/metrics/inception.py): the field's standard for natural images.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

import torch

from pipeline.data.description import DIGIT_SOURCES, Dataset
from pipeline.errors import UserError
from pipeline.metrics.classifier import FEATURES, VERSION, digit_classifier
from pipeline.metrics.inception import inception


class Extractor(Protocol):
    num_features: int
    has_logits: bool

    def features(self, images: torch.Tensor) -> torch.Tensor: ...

    def logits(self, features: torch.Tensor) -> torch.Tensor | None: ...

    def describe(self) -> dict[str, Any]:
        """What the protocol record says of this extractor: name, input resize, weights."""
        ...


class DigitFeatures:
    """The digit classifier's penultimate layer (64-d) and its head (10 digits)."""

    num_features = FEATURES
    has_logits = True

    def __init__(self, resolution: int, device: torch.device | str = "cpu"):
        classifier, self.accuracy = digit_classifier(resolution)
        self.classifier = classifier.to(device)
        self.resolution = resolution
        self.device = device

    @torch.no_grad()
    def features(self, images: torch.Tensor) -> torch.Tensor:
        return self.classifier.features(images.to(self.device))

    @torch.no_grad()
    def logits(self, features: torch.Tensor) -> torch.Tensor:
        return self.classifier.head(features.to(self.device, torch.float32))

    def describe(self) -> dict[str, Any]:
        return {
            "extractor": f"digit-classifier-v{VERSION} at {self.resolution}px, "
            f"held-out accuracy {self.accuracy:.4f}",
            "resize": "area average to 8x8 (the digits' native grid)",
            "weights": f"trained by the project, seed 0, v{VERSION}",
        }


def extractor_for(
    dataset: Dataset,
    choice: str = "auto",
    inception_weights: str | Path | None = None,
    device: torch.device | str = "cpu",
) -> Extractor:
    """`auto`: the digit classifier for digit datasets, InceptionV3 for every other image set."""
    if choice == "auto":
        choice = "digits" if dataset.source in DIGIT_SOURCES else "inception"
    if choice == "digits":
        return DigitFeatures(dataset.resolution, device)
    if choice == "inception":
        return inception(inception_weights, device)
    raise UserError(f"eval.extractor: {choice!r} is not one of auto, digits, inception")
