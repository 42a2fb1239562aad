"""Evaluation: feature extractors, FID, precision/recall/density/coverage, mode counting."""
