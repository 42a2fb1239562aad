"""A digit classifier trained by the project on the bundled digits: its penultimate layer is the
feature space of digits-FID (Inception weights cannot be assumed offline).

Trained once per resolution with a fixed seed, then cached on disk; held-out accuracy is kept
with the weights and reported with every result.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from pipeline.data import sources

VERSION = 1  # bump when the architecture or training recipe changes: invalidates caches
FEATURES = 64
MIN_ACCURACY = 0.97


def cache_dir() -> Path:
    root = os.environ.get("GANPIPE_CACHE") or Path.home() / ".cache" / "gan-pipeline"
    return Path(root)


class DigitClassifier(nn.Module):
    """Images (N, 1, H, W) in [-1, 1] at any resolution >= 8 -> logits over 10 digits."""

    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(1, 32, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(32, 64, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(64, 64, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(64 * 4, FEATURES),
            nn.ReLU(),
        )
        self.head = nn.Linear(FEATURES, 10)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(F.adaptive_avg_pool2d(x.float(), 8))  # the digits' native 8x8 grid

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


class Features(nn.Module):
    """The classifier's penultimate layer as a torchmetrics feature extractor."""

    def __init__(self, classifier: DigitClassifier):
        super().__init__()
        self.classifier = classifier
        self.num_features = FEATURES

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier.features(x)


def _as_input(images) -> torch.Tensor:
    """uint8 (N, H, W) -> float (N, 1, 8, 8) in [-1, 1], pooled once to the native grid."""
    x = torch.from_numpy(images).float().unsqueeze(1) / 127.5 - 1.0
    return F.adaptive_avg_pool2d(x, 8)


def _jitter(x: torch.Tensor) -> torch.Tensor:
    """Shift the whole batch by up to one pixel: generated digits are rarely perfectly centred."""
    dx, dy = (int(d) for d in torch.randint(-1, 2, (2,)))
    padded = F.pad(x, (1, 1, 1, 1), value=-1.0)
    return torch.roll(padded, (dy, dx), dims=(2, 3))[..., 1:-1, 1:-1]


def train_classifier(resolution: int, seed: int = 0, epochs: int = 30) -> tuple[nn.Module, float]:
    data = sources.digits(resolution)
    x_train, y_train = _as_input(data["train"][0]), torch.from_numpy(data["train"][1])
    x_test, y_test = _as_input(data["test"][0]), torch.from_numpy(data["test"][1])
    batches = -(-len(x_train) // 64)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = DigitClassifier()
        optimizer = torch.optim.Adam(model.parameters(), lr=2e-3, weight_decay=1e-4)
        schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, 3e-3, epochs * batches)
        for _ in range(epochs):
            for idx in torch.randperm(len(x_train)).split(64):
                loss = F.cross_entropy(model(_jitter(x_train[idx])), y_train[idx])
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                schedule.step()
    model.eval()
    with torch.no_grad():
        accuracy = (model(x_test).argmax(1) == y_test).float().mean().item()
    return model, accuracy


def digit_classifier(resolution: int, seed: int = 0) -> tuple[DigitClassifier, float]:
    """The cached classifier for this resolution, trained on first use; and its accuracy."""
    path = cache_dir() / f"digit-classifier-v{VERSION}-r{resolution}-s{seed}.pt"
    model = DigitClassifier()
    if path.is_file():
        saved = torch.load(path, map_location="cpu", weights_only=True)
        model.load_state_dict(saved["state"])
        return model.eval(), saved["accuracy"]
    model, accuracy = train_classifier(resolution, seed)
    if accuracy < MIN_ACCURACY:
        raise RuntimeError(f"digit classifier reached {accuracy:.3f} < {MIN_ACCURACY} held-out")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    torch.save({"state": model.state_dict(), "accuracy": accuracy}, tmp)
    os.replace(tmp, path)  # atomic: concurrent runs never read half a file
    return model, accuracy
