"""Data sources -> WebDataset shards + index.json, and the shard reader."""
