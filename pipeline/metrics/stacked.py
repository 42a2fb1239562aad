"""Mode counting on stacked digits (BENCHMARKS.md section 2): the digit classifier reads each
channel of each generated image; a mode is a (R, G, B) digit triple, 1000 in all."""

from __future__ import annotations

from typing import Any

import torch

from pipeline.metrics.classifier import VERSION, digit_classifier

MODES = 1000


def stacked_metrics(samples: torch.Tensor, resolution: int) -> dict[str, Any]:
    classifier, accuracy = digit_classifier(resolution)  # trains it on first use: grads on
    triples = []
    with torch.no_grad():
        for batch in samples.split(1000):
            digits = [classifier(batch[:, k : k + 1]).argmax(1) for k in range(3)]
            triples.append(100 * digits[0] + 10 * digits[1] + digits[2])
    histogram = torch.bincount(torch.cat(triples), minlength=MODES).double()
    share = histogram[histogram > 0] / histogram.sum()
    return {
        "modes": int((histogram > 0).sum()),
        "modes_total": MODES,
        "reverse_kl": float((share * (share * MODES).log()).sum()),
        "protocol": {
            "benchmark": "stacked-digits",
            "extractor": f"digit-classifier-v{VERSION} at {resolution}px, "
            f"held-out accuracy {accuracy:.4f}, one channel at a time",
            "n_generated": len(samples),
            "kl": "sum q log(1000 q) over the generated triple histogram",
            "floor_kl_26000": round(999 / (2 * 26000), 4),
        },
    }
