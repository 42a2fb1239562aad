"""The trained generator for downstream use: its weights as safetensors (tensors only, so
loading runs no code) and its architecture as JSON. `load_generator` rebuilds it with this
package's model code:

    from pipeline.export import load_generator
    generator = load_generator("generator.json")
    images, labels = pipeline.sampling.generate(generator, 16, seed=0)
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from safetensors.torch import load_file, save_file
from torch import nn

from pipeline.config import ModelConfig, build
from pipeline.data.description import Dataset
from pipeline.errors import UserError
from pipeline.models import build_models
from pipeline.models.registry import FAMILIES
from pipeline.runs.loading import load_models

FORMAT = "gan-pipeline generator 1"


def export(run_dir: Path, out: Path) -> tuple[Path, Path]:
    """The EMA generator of the run's newest intact checkpoint -> out.safetensors, out.json."""
    loaded = load_models(run_dir)
    generator, config = loaded.generator, loaded.config
    grows = FAMILIES[config.model.family].progressive
    spec: dict[str, Any] = {
        "format": FORMAT,
        "name": config.name,
        "step": loaded.step,
        "model": dataclasses.asdict(config.model),
        "data": loaded.dataset.summary(),
        "stage": [generator.level, generator.alpha] if grows else None,  # progressive growing
        "truncation": config.eval.truncation,
    }
    weights, described = out.with_suffix(".safetensors"), out.with_suffix(".json")
    out.parent.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().contiguous() for k, v in generator.state_dict().items()}
    save_file(tensors, str(weights), metadata={"format": FORMAT, "step": str(loaded.step)})
    described.write_text(json.dumps(spec, indent=2))
    return weights, described


def load_generator(spec_path: str | Path) -> nn.Module:
    """The exported generator (in eval mode), from its JSON and the safetensors beside it."""
    spec_path = Path(spec_path)
    try:
        spec = json.loads(spec_path.read_text())
    except (OSError, ValueError) as err:
        raise UserError(f"cannot read exported generator {spec_path}: {err}") from None
    if spec.get("format") != FORMAT:
        raise UserError(f"{spec_path} is not an exported generator ({FORMAT!r} expected)")
    model = build(ModelConfig, spec["model"], "model.")
    generator, _ = build_models(model, Dataset(spec_path.parent, **spec["data"]))  # its shape
    generator.load_state_dict(load_file(str(spec_path.with_suffix(".safetensors"))))
    if spec["stage"]:
        generator.set_stage(*spec["stage"])
    return generator.eval()
