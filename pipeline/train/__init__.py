"""Training: losses, EMA, checkpoints and the loop. `python -m pipeline.train` runs it."""
