"""Precomputed FID statistics in and out: the mean and covariance of a set's features in the
`.npz` layout pytorch-fid and clean-fid read and write (`mu`, `sigma`). The files written here
also carry the protocol that made them (`protocol`, a JSON string the other tools ignore), so a
file made with another network or preprocessing is refused instead of giving a wrong FID."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pipeline.data.description import read_dataset
from pipeline.errors import UserError
from pipeline.files import sha256
from pipeline.metrics.extractors import Extractor, extractor_for
from pipeline.metrics.reference import dataset_hash, reference_features

MATCHED = ("extractor", "resize")  # what must agree for two feature sets to be compared


def moments(features: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    rows = features.double().numpy()
    return rows.mean(0), np.cov(rows, rowvar=False)


def frechet_from_moments(
    mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray
) -> float:
    """||mu1 - mu2||^2 + tr(sigma1 + sigma2 - 2 (sigma1 sigma2)^(1/2)); the trace of the root
    is the sum of the square roots of sigma1 sigma2's eigenvalues (real and >= 0 in exact
    arithmetic; rounding leaves tiny negative or imaginary parts, dropped)."""
    eigenvalues = np.linalg.eigvals(sigma1 @ sigma2)
    root_trace = np.sqrt(eigenvalues.real.clip(min=0)).sum()
    distance = ((mu1 - mu2) ** 2).sum() + np.trace(sigma1) + np.trace(sigma2) - 2 * root_trace
    return float(distance)


def write_stats(path: Path, features: torch.Tensor, protocol: dict[str, Any]) -> None:
    mu, sigma = moments(features)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as handle:  # np.savez would append .npz to a name without it
        np.savez(handle, mu=mu, sigma=sigma, protocol=json.dumps(protocol, sort_keys=True))


def read_stats(path: Path, extractor: Extractor) -> tuple[np.ndarray, np.ndarray, str]:
    """`mu`, `sigma` and a line saying where they came from; one clear error for a file that
    cannot be compared with this extractor's features."""
    if not path.is_file():
        raise UserError(f"--reference-stats {path}: no such file")
    try:
        stats = np.load(path, allow_pickle=False)
        mu, sigma = stats["mu"], stats["sigma"]
        recorded = json.loads(str(stats["protocol"])) if "protocol" in stats.files else None
    except (ValueError, KeyError, OSError) as err:
        raise UserError(
            f"--reference-stats {path}: not an .npz with `mu` and `sigma` ({err}); write one "
            "with `ganpipe stats DATA_DIR --out FILE.npz`"
        ) from None
    width = extractor.num_features
    if mu.shape != (width,) or sigma.shape != (width, width):
        raise UserError(
            f"--reference-stats {path}: mu {mu.shape} and sigma {sigma.shape}, but the "
            f"extractor gives {width} features ({extractor.describe()['extractor']}): the file "
            "was made with another network; choose the matching --extractor or remake it"
        )
    ours = extractor.describe()
    if recorded is None:
        origin = "protocol not recorded in the file: assumed the same network and preprocessing"
    else:
        differ = [k for k in MATCHED if recorded.get(k) != ours[k]]
        if differ:
            theirs = "; ".join(f"{k}: {recorded.get(k)!r}" for k in differ)
            raise UserError(
                f"--reference-stats {path}: made with another protocol ({theirs}), this "
                f"evaluation uses {'; '.join(f'{k}: {ours[k]!r}' for k in differ)}; remake it "
                "with `ganpipe stats` and the same --extractor"
            )
        origin = f"protocol recorded and matching ({recorded.get('data', 'data not named')})"
    return mu, sigma, f"{path.name} sha256 {sha256(path)[:16]}, {origin}"


def dataset_stats(
    data_dir: Path, out: Path, split: str | None, extractor: str, weights: str | None
) -> str:
    """`ganpipe stats`: the statistics of a dataset split (default: the one evaluations
    compare with, test when there is one) written to `out`; returns a line saying so."""
    dataset = read_dataset(data_dir)
    if not dataset.images:
        raise UserError(f"{data_dir}: FID statistics are for image datasets, not {dataset.source}")
    split = split or ("test" if dataset.samples("test") else "train")
    if not dataset.samples(split):
        raise UserError(f"{data_dir}: no {split} split; its splits: {', '.join(dataset.splits)}")
    chosen = extractor_for(dataset, extractor, weights)
    features = reference_features(data_dir, split, chosen)
    data = f"{data_dir.name} {split} split, dataset {dataset_hash(data_dir)}"
    protocol = {**chosen.describe(), "samples": len(features), "data": data}
    write_stats(out, features, protocol)
    return f"wrote {out}: mu and sigma of {len(features)} {split} images, {protocol['extractor']}"
