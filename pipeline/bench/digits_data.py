"""The bundled digits for a bench, built once per bench folder at each resolution its configs
ask for (a config's `data.shape` must match the shards it reads)."""

from __future__ import annotations

from pathlib import Path

from pipeline.config import load_config
from pipeline.data.shards import build

BUILT_RESOLUTION = 32  # what `ganpipe data build digits` makes unless told


def digits_for(out: Path, config: str, overrides: list[str]) -> Path:
    """The digits at the resolution of `config` with `overrides`."""
    shape = load_config(Path(config), overrides).data.shape
    return digits_at(out, shape[-1] if shape else BUILT_RESOLUTION)


def digits_at(out: Path, resolution: int) -> Path:
    data = out / "data" / f"digits-{resolution}"
    if not (data / "index.json").is_file():
        build("digits", data, resolution=resolution)
    return data
