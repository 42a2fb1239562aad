"""Generator and discriminator families, picked by `model.family` in the config."""

from pipeline.models.registry import build_models

__all__ = ["build_models"]
