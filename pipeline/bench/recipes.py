"""Recipes of the collapse benchmark, read from configs/collapse/recipes.yaml: `vanilla`
(the suite's base config as is), `best` (every component of the best recipe) and the
ablations `best-minus-<component>`. A recipe becomes a list of `key=value` overrides."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from pipeline.errors import UserError

RECIPES_FILE = Path("configs/collapse/recipes.yaml")


def load(path: Path = RECIPES_FILE) -> dict[str, list[str]]:
    """Recipe name -> the components it adds to the vanilla base."""
    if not path.is_file():
        raise UserError(f"{path} does not exist: run from the project root or pass --recipes-file")
    spec = yaml.safe_load(path.read_text())
    components, best = spec.get("components", {}), spec.get("best", [])
    unknown = [c for c in best if c not in components]
    if unknown:
        raise UserError(f"{path}: best lists {', '.join(unknown)}, not defined under components")
    recipes = {"vanilla": [], "best": list(best)}
    for dropped in best:
        recipes[f"best-minus-{dropped}"] = [c for c in best if c != dropped]
    return recipes


def applies(path: Path, recipe: str, suite: str) -> bool:
    """False for an ablation whose dropped component sets nothing on this suite."""
    if not recipe.startswith("best-minus-"):
        return True
    return bool(overrides(path, [recipe.removeprefix("best-minus-")], suite))


def overrides(path: Path, components: list[str], suite: str) -> list[str]:
    """The `key=value` overrides of these components for one suite."""
    spec: dict[str, Any] = yaml.safe_load(path.read_text())["components"]
    values: dict[str, Any] = {}
    for name in components:
        values.update(spec[name].get("all", {}))
        values.update(spec[name].get(suite, {}))
    return [f"{key}={json.dumps(value)}" for key, value in values.items()]  # JSON is YAML
