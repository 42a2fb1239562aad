"""Recipes of the collapse benchmark, read from configs/collapse/recipes.yaml: `vanilla`
(the suite's base config as is), `best` (every component of the best recipe), the
ablations `best-minus-<component>` and the named recipes of its `recipes` section. A recipe
becomes a list of `key=value` overrides."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from pipeline.errors import UserError

RECIPES_FILE = Path("configs/collapse/recipes.yaml")


@dataclass(frozen=True)
class RecipeBook:
    components: dict[str, dict[str, Any]]  # component -> {"all" or suite: {key: value}}
    recipes: dict[str, list[str]]  # recipe -> the components it adds to the vanilla base

    def overrides(self, recipe: str, suite: str) -> list[str]:
        """The `key=value` overrides of a recipe on one suite."""
        return self._overrides(self.recipes[recipe], suite)

    def applies(self, recipe: str, suite: str) -> bool:
        """False for an ablation whose dropped component sets nothing on this suite."""
        if not recipe.startswith("best-minus-"):
            return True
        return bool(self._overrides([recipe.removeprefix("best-minus-")], suite))

    def _overrides(self, components: list[str], suite: str) -> list[str]:
        values: dict[str, Any] = {}
        for name in components:
            values.update(self.components[name].get("all", {}))
            values.update(self.components[name].get(suite, {}))
        return [f"{key}={json.dumps(value)}" for key, value in values.items()]  # JSON is YAML


def load(path: Path = RECIPES_FILE) -> RecipeBook:
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
    for name, listed in (spec.get("recipes") or {}).items():
        unknown = [c for c in listed if c not in components]
        if unknown or name in recipes:
            what = f"lists {', '.join(unknown)}, not defined" if unknown else "is a built-in name"
            raise UserError(f"{path}: recipe {name} {what}")
        recipes[name] = list(listed)
    return RecipeBook(components, recipes)
