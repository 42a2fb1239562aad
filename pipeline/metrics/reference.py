"""Features of a real split, computed once per (dataset, split, extractor) and cached on disk:
the key hashes the dataset's index (which lists every shard's sha256) and the extractor's
description (which names its weights), so a changed dataset or extractor never reuses them."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import torch

from pipeline.data.reader import evaluation_batches
from pipeline.metrics.classifier import cache_dir
from pipeline.metrics.extractors import Extractor

BATCH = 500


def dataset_hash(data_dir: str | Path) -> str:
    return hashlib.sha256((Path(data_dir) / "index.json").read_bytes()).hexdigest()[:16]


def cache_path(data_dir: str | Path, split: str, extractor: Extractor) -> Path:
    described = json.dumps(extractor.describe(), sort_keys=True)
    key = hashlib.sha256(f"{dataset_hash(data_dir)} {split} {described}".encode()).hexdigest()
    return cache_dir() / "reference" / f"{split}-{key[:16]}.pt"


def reference_features(data_dir: str | Path, split: str, extractor: Extractor) -> torch.Tensor:
    """(N, features) of every image of `split`, on the CPU."""
    path = cache_path(data_dir, split, extractor)
    if path.is_file():
        return torch.load(path, map_location="cpu", weights_only=True)
    batches = evaluation_batches(data_dir, BATCH, split)
    features = torch.cat([extractor.features(batch.x).cpu() for batch in batches])
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(f".tmp{os.getpid()}")
    torch.save(features, partial)
    os.replace(partial, path)  # atomic: concurrent evaluations never read half a file
    return features
