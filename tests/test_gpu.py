"""The CUDA path (benchmarks/gpu_check.sh runs these on a GPU machine; skipped elsewhere):
bf16 training with evaluation, the collapse guard and every health figure on the device."""

import json

import numpy as np
import pytest
import torch
import yaml
from conftest import ganpipe

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA"),
]


def test_bf16_training_evaluates_and_guards_on_the_gpu(tmp_path, digits16):
    config = tmp_path / "gpu.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "data": {"dir": str(digits16)},
                "model": {"family": "dcgan", "z_dim": 16, "width": 16, "d_width": 16},
                "train": {
                    "steps": 20,
                    "batch_size": 32,
                    "mixed_precision": "bf16",
                    "log_every": 10,
                    "eval_every": 20,
                    "sample_every": 20,
                },
                "eval": {"n_samples_during_training": 500},
                "collapse_guard": {"every": 10, "samples": 200, "real_samples": 400},
                "tracking": {"wandb": False},  # W&B is tested on the CPU
            }  # fmt: skip
        )
    )
    run = tmp_path / "run"
    ganpipe("train", "--config", config, "--run-dir", run)
    records = [json.loads(line) for line in (run / "metrics.jsonl").open()]
    logged = [r for r in records if "loss_d" in r]
    assert all(np.isfinite(r["loss_d"]) and r["memory/gpu_peak_gb"] > 0 for r in logged)
    assert [r["step"] for r in records if "guard/recall" in r] == [10]
    assert any("eval/fid" in r for r in records)
    metrics = json.loads(ganpipe("eval", "--run", run, "--n", "1000").stdout)
    assert metrics["fid"] > 0 and metrics["protocol"]["n_generated"] == 1000
