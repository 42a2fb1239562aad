"""A run on disk: its directory, its checkpoints, and its models loaded back. Training and
inference both stand on this layer; it imports neither."""
