"""`ganpipe bench throughput`: how fast the pipeline trains, reads its shards and evaluates, beside
a plain PyTorch loop with the same models, batch, loss and dtype (pipeline/bench/plain_loop.py).

- pipeline: a real `ganpipe train` process (one process, its loader, toolbox, checks and
  logging; no evaluation, samples or checkpoints in the timed window); images/s of its second
  log window, so start-up and warm-up are not counted;
- baseline: the plain loop in this process, after the same number of warm-up steps;
- the two take turns, `repeats` times each (3 unless told), and each keeps its best: a shared
  CPU's speed drifts by tens of percent from one minute to the next, so single readings would
  mostly compare two moments;
- `time_ratio` = baseline_img_s / pipeline_img_s: the pipeline's time per image over the
  plain loop's (1.05 = 5% slower);
- loader: images/s of the training stream alone (decode, shuffle, augment) per worker count,
  and the best of them over the pipeline's step rate (the loader must never be the limit);
- evaluation: generated samples/s through the protocol's feature extractor, on the training
  device (none where the extractor is missing, as InceptionV3 without its weights);
- memory: the training process's peak (accelerator memory on a GPU, resident memory here);
- MFU: the training FLOPs per image (G and D forward and backward, counted by torch's FLOP
  counter on the plain step; penalties such as R1 not counted) times the pipeline's images/s, over
  the device's measured matrix-multiply rate at the run's dtype.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pipeline.bench.plain_loop import PlainLoop, peak_flops
from pipeline.config import load_config
from pipeline.data.description import Dataset
from pipeline.data.reader import dataset_for, training_batches
from pipeline.data.shards import build
from pipeline.errors import UserError
from pipeline.metrics.evaluate import protocol_for
from pipeline.metrics.inception import CHUNK, inception
from pipeline.models import build_models
from pipeline.optimizers import default_device_type
from pipeline.sampling import generate
from pipeline.train.determinism import use_kernels

# name: (config, data source, steps per timed window, settings that pin the measured model).
# random-128: noise images with 1000 classes standing in for ImageNet at 128 px
# (benchmarks/gpu_check.sh; too big for a CPU). dcgan-32 is the quickstart's DCGAN at 32 px,
# the size its speed figures were measured at, whatever resolution the quickstart trains at.
# The digits BigGAN as its speed figures were measured: 32 px, no LeCam or DiffAugment, which
# the plain loop does not run.
BIGGAN_32 = ["data.shape=[1,32,32]", "regularize.lecam=0", "d_augment.diffaugment=[]"]
CONFIGS = {
    "mlp-ring": ("configs/ring.yaml", "mog-ring", 400, []),
    "dcgan-32": ("configs/quickstart.yaml", "digits", 30, ["data.shape=[1,32,32]"]),
    "biggan-32": ("configs/biggan-digits.yaml", "digits", 10, BIGGAN_32),
    "biggan-128": ("configs/biggan-imagenet128.yaml", "random-128", 10, []),
}


def build_data(source: str, data: Path) -> None:
    if source != "random-128":
        build(source, data)
        return
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (2048, 128, 128, 3), dtype=np.uint8)
    arrays = data.parent / "random-128.npz"
    arrays.parent.mkdir(parents=True, exist_ok=True)
    np.savez(arrays, images=images, labels=np.arange(len(images)) % 1000)
    build("npz", data, path=arrays, resolution=128, channels=3)


WORKERS = (0, 1, 2)


def prepared_data(out: Path, source: str) -> Path:
    """The source's shards under `out`, built the first time."""
    data = out / "data" / source
    if not (data / "index.json").is_file():
        build_data(source, data)
    return data


def train_quietly(config: str, data: Path, run: Path, steps: int, flags: list[str]) -> None:
    """A `ganpipe train` process of `steps` steps with nothing in them but training: no
    evaluation, samples or checkpoints before the last step, no W&B. `flags` come last."""
    never = 10**9
    flags = [f"data.dir={data}", f"train.steps={steps}", f"train.eval_every={never}",
             f"train.sample_every={never}", f"train.checkpoint_every={never}",
             "tracking.wandb=false", *flags]  # fmt: skip
    command = [sys.executable, "-m", "pipeline.cli", "train", "--config", config,
               "--run-dir", str(run), *flags]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode:
        raise UserError(f"{config}: the training process failed:\n{done.stderr[-3000:]}")


def pipeline_rate(config: str, data: Path, steps: int, overrides: list[str]) -> dict[str, float]:
    """Images/s and peak memory of a real training process over its second window."""
    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp, "run")
        train_quietly(config, data, run, 2 * steps, [f"train.log_every={steps}", *overrides])
        records = [json.loads(line) for line in (run / "metrics.jsonl").open()]
    timed = [r for r in records if "img_per_s" in r][-1]
    memory = timed.get("memory/gpu_peak_gb", timed["memory/host_peak_gb"])
    return {"img_s": timed["img_per_s"], "peak_memory_gb": memory}


def loader_rates(data: Path, batch_size: int, batches: int = 60) -> dict[str, float]:
    """Images/s of the training stream per worker count, after its first batch."""
    rates = {}
    for workers in WORKERS:
        stream = iter(training_batches(data, batch_size, seed=0, workers=workers))
        next(stream)  # workers started, buffers filled
        started = time.perf_counter()
        for _ in range(batches):
            next(stream)
        rates[str(workers)] = batches * batch_size / (time.perf_counter() - started)
    return rates


def eval_rate(config, dataset: Dataset, device: str, n: int = 2000) -> float | None:
    """Samples/s of generation plus feature extraction, as evaluations run them; None where
    this machine has no extractor for the data (its reason printed)."""
    try:
        protocol = protocol_for(dataset, device=device)
    except UserError as error:
        print(f"{config.name}: evaluation speed not measured: {error}", file=sys.stderr)
        return None
    generator = build_models(config.model, dataset)[0].to(device)
    protocol.summarize(generate(generator, 100, 0, device=device)[0])  # extractor ready first
    started = time.perf_counter()
    samples, _ = generate(generator, n, 0, config.eval.batch_size, device)
    protocol.summarize(samples)
    return n / (time.perf_counter() - started)


def inception_rate(device: str) -> float | None:
    """Images/s of InceptionV3 features on 32 px images (CIFAR-10's size, resized to 299 as
    evaluations do), after a first pass; None where no InceptionV3 network is installed."""
    try:
        network = inception(device=device)
    except UserError as error:
        print(f"InceptionV3 speed not measured: {error}", file=sys.stderr)
        return None
    n = 16 * CHUNK if device == "cuda" else CHUNK  # a CPU takes seconds an image batch
    images = torch.rand(n, 3, 32, 32, device=device) * 2 - 1
    network.features(images[:2])
    if device == "cuda":
        torch.cuda.synchronize()
    started = time.perf_counter()
    network.features(images).cpu()
    return n / (time.perf_counter() - started)


def measure(
    name: str, out: Path, overrides: list[str], steps: int | None, repeats: int
) -> dict[str, Any]:
    config_path, source, default_steps, pinned = CONFIGS[name]
    overrides = [*pinned, *overrides]
    steps = steps or default_steps
    data = prepared_data(out, source)
    config = load_config(config_path, [f"data.dir={data}", *overrides])
    dataset = dataset_for(config.data)
    cfg = config.train
    device = default_device_type()
    use_kernels(cfg.deterministic)  # the plain loop gets the kernels the pipeline chooses
    plain = PlainLoop(config, dataset, device)
    pipelines, baselines = [], []
    for _ in range(repeats):
        pipelines.append(pipeline_rate(config_path, data, steps, overrides))
        baselines.append(plain.images_per_second(steps, warmup=steps))
    pipeline = max(pipelines, key=lambda rate: rate["img_s"])
    baseline = max(baselines)
    bf16 = cfg.mixed_precision == "bf16"
    peak = peak_flops(device, torch.bfloat16 if bf16 and device == "cuda" else torch.float32)
    flops = plain.flops_per_image()
    loader = loader_rates(data, cfg.batch_size)
    return {
        "config": name,
        "file": config_path,
        "model": config.model.family,
        "resolution": dataset.resolution if dataset.images else None,
        "batch_size": cfg.batch_size,
        "n_dis": cfg.n_dis,
        "dtype": "bf16" if bf16 else "fp32",
        "pipeline_img_s": pipeline["img_s"],
        "baseline_img_s": baseline,
        "time_ratio": baseline / pipeline["img_s"],
        "loader_img_s": loader,
        "loader_over_step": max(loader.values()) / pipeline["img_s"],
        "eval_samples_s": eval_rate(config, dataset, device),
        "train_flops_per_image": flops,
        "peak_flops_measured": peak,
        "mfu": flops * pipeline["img_s"] / peak,
        "peak_memory_gb": pipeline["peak_memory_gb"],
    }


def run(
    out: Path, names: list[str], overrides: list[str], steps: int | None = None, repeats: int = 3
) -> dict[str, Any]:
    rows = [measure(name, out, overrides, steps, repeats) for name in names]
    result = {**machine(), "configs": rows}
    result["inception_img_s"] = inception_rate(default_device_type())
    out.mkdir(parents=True, exist_ok=True)
    (out / "throughput.json").write_text(json.dumps(result, indent=2))
    return result


def machine() -> dict[str, Any]:
    """What a bench's figures were measured on."""
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else "CPU"
    return {"device": device, "threads": torch.get_num_threads(), "torch": torch.__version__}


def table(result: dict[str, Any]) -> str:
    lines = [
        f"device: {result['device']}, {result['threads']} threads",
        "| config | batch x n_dis | pipeline img/s | plain loop img/s | time_ratio | "
        "loader img/s (0/1/2 workers) | loader / step | eval samples/s | peak GB | MFU |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in result["configs"]:
        loader = " / ".join(f"{v:.0f}" for v in r["loader_img_s"].values())
        lines.append(
            f"| {r['config']} | {r['batch_size']} x {r['n_dis']} | {r['pipeline_img_s']:.0f} | "
            f"{r['baseline_img_s']:.0f} | {r['time_ratio']:.3f} | {loader} | "
            f"{r['loader_over_step']:.1f}x | {_rate(r['eval_samples_s'])} | "
            f"{r['peak_memory_gb']:.2f} | {r['mfu']:.1%} |"
        )
    lines.append(f"InceptionV3 features: {_rate(result.get('inception_img_s'))} images/s (32 px)")
    return "\n".join(lines)


def _rate(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.0f}"
