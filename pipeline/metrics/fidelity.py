"""FID, KID and Inception Score through torchmetrics, on features computed once by an
extractor (pipeline/metrics/extractors.py) and reused for precision/recall/density/coverage.
KID's subsets and IS's splits are drawn from a seeded generator: the same samples always give
the same numbers."""

from __future__ import annotations

import warnings

import torch
from torch import nn

# torchmetrics is imported where it is used: it pulls in scipy.signal, seconds of start-up
# that training without evaluation does not need.

KID_SUBSETS, KID_SUBSET_SIZE, IS_SPLITS = 100, 1000, 10
# The features are in memory already: torchmetrics' warning that it buffers them says nothing.
warnings.filterwarnings("ignore", message=".*will save all extracted features in buffer")


class _Precomputed(nn.Module):
    """Hands torchmetrics the rows it is given: they are already features (or logits)."""

    def __init__(self, num_features: int):
        super().__init__()
        self.num_features = num_features

    def forward(self, rows: torch.Tensor) -> torch.Tensor:
        return rows


# The rows are complete on this process, so no metric syncs across ranks (a sync would
# deadlock when only the main process measures).


def frechet_distance(real: torch.Tensor, fake: torch.Tensor) -> float:
    from torchmetrics.image.fid import FrechetInceptionDistance

    fid = FrechetInceptionDistance(feature=_Precomputed(real.shape[1]), sync_on_compute=False)
    fid.update(real.double(), real=True)
    fid.update(fake.double(), real=False)
    return float(fid.compute())


def kernel_distance(real: torch.Tensor, fake: torch.Tensor, seed: int) -> tuple[float, float]:
    """KID (polynomial kernel, unbiased MMD^2): mean and std over random subsets."""
    from torchmetrics.image.kid import KernelInceptionDistance

    size = min(KID_SUBSET_SIZE, len(real), len(fake))
    kid = KernelInceptionDistance(
        feature=_Precomputed(real.shape[1]),
        subsets=KID_SUBSETS,
        subset_size=size,
        sync_on_compute=False,
    )
    kid.update(real.double(), real=True)
    kid.update(fake.double(), real=False)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        mean, std = kid.compute()
    return float(mean), float(std)


def inception_score(logits: torch.Tensor, seed: int) -> tuple[float, float]:
    """IS = exp(E KL(p(y|x) || p(y))) over `IS_SPLITS` splits: mean and std."""
    from torchmetrics.image.inception import InceptionScore

    score = InceptionScore(
        feature=_Precomputed(logits.shape[1]), splits=IS_SPLITS, sync_on_compute=False
    )
    score.update(logits.double())
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        mean, std = score.compute()
    return float(mean), float(std)
