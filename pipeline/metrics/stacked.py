"""Mode counting on stacked digits (BENCHMARKS.md section 2): the digit classifier reads each
channel of each generated image; a mode is a (R, G, B) digit triple, 1000 in all."""

from __future__ import annotations

from typing import Any

import torch

from pipeline.metrics.extractors import DigitFeatures

MODES = 1000


@torch.no_grad()
def stacked_modes(classifier: DigitFeatures, images: torch.Tensor) -> torch.Tensor:
    """Each image's mode id 100 a + 10 b + c, from the digits read in R, G and B."""
    digits = [
        classifier.logits(classifier.features(images[:, k : k + 1])).argmax(1).cpu()
        for k in range(3)
    ]
    return mode_of(digits)


def mode_of(digits: list[torch.Tensor]) -> torch.Tensor:
    """The mode id 100 a + 10 b + c of the digits read in R, G and B."""
    return 100 * digits[0] + 10 * digits[1] + digits[2]


def stacked_metrics(modes: torch.Tensor, classifier: DigitFeatures) -> dict[str, Any]:
    histogram = torch.bincount(modes.long(), minlength=MODES).double()
    share = histogram[histogram > 0] / histogram.sum()
    return {
        "modes": int((histogram > 0).sum()),
        "modes_total": MODES,
        "reverse_kl": float((share * (share * MODES).log()).sum()),
        "mode_histogram": histogram.long().tolist(),
        "protocol": {
            "benchmark": "stacked-digits",
            **classifier.describe(),
            "read": "one channel at a time",
            "n_generated": len(modes),
            "kl": "sum q log(1000 q) over the generated triple histogram",
            "floor_kl_26000": round(999 / (2 * 26000), 4),
        },
    }
