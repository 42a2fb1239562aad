"""Feature extractors behind one interface: images in [-1, 1] -> features, and class logits
read from those features (for the Inception Score and class histograms).

- `DigitFeatures`: the project's digit classifier (pipeline/metrics/classifier.py), trained
  on the bundled digits; the extractor of every digit dataset.
- `InceptionFeatures`: the FID InceptionV3 (TensorFlow weights converted by torch-fidelity),
  through torchmetrics; the field's standard for natural images. It needs torch-fidelity and
  its weights file, which cannot be downloaded offline.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

import torch

from pipeline.data.description import DIGIT_SOURCES, Dataset
from pipeline.errors import UserError
from pipeline.files import sha256
from pipeline.metrics.classifier import FEATURES, VERSION, digit_classifier

INCEPTION_WEIGHTS = "weights-inception-2015-12-05-6726825d.pth"
INCEPTION_HELP = (
    f"get {INCEPTION_WEIGHTS} (the FID InceptionV3 weights of torch-fidelity's v0.2.0 release) "
    "on a machine with internet access and pass its path with --inception-weights PATH "
    "(config key eval.inception_weights), or copy it into {hub}"
)


class Extractor(Protocol):
    num_features: int

    def features(self, images: torch.Tensor) -> torch.Tensor: ...

    def logits(self, features: torch.Tensor) -> torch.Tensor: ...

    def describe(self) -> dict[str, Any]:
        """What the protocol record says of this extractor: name, input resize, weights."""
        ...


class DigitFeatures:
    """The digit classifier's penultimate layer (64-d) and its head (10 digits)."""

    num_features = FEATURES

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


def _hub_weights() -> Path:
    return Path(torch.hub.get_dir()) / "checkpoints" / INCEPTION_WEIGHTS


class InceptionFeatures:
    """torchmetrics' InceptionV3 (torch-fidelity's FID network): 2048-d pool features; the
    logits are those features through the network's last layer without its bias, as
    torch-fidelity computes the Inception Score."""

    num_features = 2048

    def __init__(self, weights: str | Path | None = None, device: torch.device | str = "cpu"):
        from torchmetrics.image.fid import NoTrainInceptionV3
        from torchmetrics.utilities.imports import _TORCH_FIDELITY_AVAILABLE

        if not _TORCH_FIDELITY_AVAILABLE:
            raise UserError(
                "the InceptionV3 extractor needs torch-fidelity: pip install "
                "'gan-pipeline[inception]' (torch-fidelity brings torchvision, which must match "
                "the installed torch)"
            )
        path = Path(weights) if weights else _hub_weights()
        if not path.is_file():
            where = f"--inception-weights {path}: no such file" if weights else "offline"
            help_text = INCEPTION_HELP.format(hub=_hub_weights().parent)
            raise UserError(f"InceptionV3 weights not found ({where}): {help_text}")
        self.network = NoTrainInceptionV3(
            name="inception-v3-compat",
            features_list=["2048"],
            feature_extractor_weights_path=str(path),
            antialias=False,  # TensorFlow 1's bilinear resize, as published FIDs were computed
        ).to(device)
        self.projection = self.network.fc.weight.detach().to(device)  # (1008, 2048)
        self.weights_path, self.weights_sha256 = path, sha256(path)
        self.device = device

    @torch.no_grad()
    def features(self, images: torch.Tensor) -> torch.Tensor:
        x = ((images.to(self.device).float() + 1) * 127.5).round().clamp(0, 255).to(torch.uint8)
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)  # grayscale: the same plane in R, G and B
        return self.network(x).reshape(len(x), -1).float()

    @torch.no_grad()
    def logits(self, features: torch.Tensor) -> torch.Tensor:
        return features.to(self.device, torch.float32) @ self.projection.T

    def describe(self) -> dict[str, Any]:
        return {
            "extractor": "InceptionV3 (torch-fidelity FID network, pool3 2048-d)",
            "resize": "uint8, bilinear to 299x299 as TensorFlow 1 does (torch-fidelity)",
            "weights": f"{self.weights_path.name} sha256 {self.weights_sha256}",
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
        return InceptionFeatures(inception_weights, device)
    raise UserError(f"eval.extractor: {choice!r} is not one of auto, digits, inception")
