"""`ganpipe bench roofline`: the most model FLOPs utilisation a config's training step can
reach on an accelerator when every operator runs as its own kernel (eager PyTorch), each at
its roofline: the longer of its FLOPs at the peak rate and its bytes read and written at the
memory bandwidth. Real kernels reach less, so the figure is a ceiling: a target above it
needs operators fused (torch.compile) or a different model, not a faster loop.

The step is the plain loop's (pipeline/bench/plain_loop.py, penalties left out as in its FLOP
count), run on the meta device, where operators cost nothing and only their shapes are
seen: seconds on a CPU for any model. The models run in the run's dtype throughout (bf16 for
`train.mixed_precision=bf16`, as autocast runs convolutions and matrix products), and
attention as the fused memory-efficient kernel a GPU runs. Defaults: one H100 SXM (989
TFLOP/s dense bf16, 3.35 TB/s)."""

from __future__ import annotations

import json
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten
from torch.utils.flop_counter import flop_registry

from pipeline.bench.plain_loop import PlainLoop
from pipeline.bench.throughput import CONFIGS, prepared_data
from pipeline.config import load_config
from pipeline.data.description import Dataset
from pipeline.data.reader import dataset_for
from pipeline.train.profiling import KINDS, OTHER, TOP, kind_of

MATMUL = "conv / matmul"
# Operators that return their input's data under another name or shape, moving nothing.
RENAMES = (torch.ops.aten.detach, torch.ops.aten._unsafe_view, torch.ops.aten.alias,
           torch.ops.aten.lift_fresh)  # fmt: skip


class Operators(TorchDispatchMode):
    """Each operator's FLOPs and bytes (its tensors in and out); views move nothing."""

    def __init__(self):
        super().__init__()
        self.seen: list[tuple[str, int, int]] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        if func.is_view or func.overloadpacket in RENAMES:
            return out
        count = flop_registry.get(func.overloadpacket)
        flops = count(*args, **kwargs, out_val=out) if count else 0
        tensors = [t for t in tree_flatten((args, kwargs, out))[0] if isinstance(t, torch.Tensor)]
        moved = sum(t.numel() * t.element_size() for t in tensors)
        self.seen.append((f"aten::{func.overloadpacket.__name__}", flops, moved))
        return out


class FusedAttention(TorchFunctionMode):
    """Attention as the memory-efficient kernel a GPU picks (the meta device would take the
    unfused path, bmm and softmax)."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if func is not F.scaled_dot_product_attention:
            return func(*args, **(kwargs or {}))
        query, key, value = args[:3]
        return torch.ops.aten._scaled_dot_product_efficient_attention(
            query, key, value, None, True, 0.0, False, scale=(kwargs or {}).get("scale")
        )[0]


def step_operators(config, dataset: Dataset) -> tuple[list[tuple[str, int, int]], int]:
    """The operators of one plain training step on the meta device, and its images."""
    dtype = torch.bfloat16 if config.train.mixed_precision == "bf16" else torch.float32
    plain = PlainLoop(config, dataset, device="meta")
    for model in (plain.G, plain.D, plain.ema):
        if model is not None:
            model.to(dtype)
    plain.real = plain.real.to(dtype)
    plain.autocast = nullcontext  # no autocast on the meta device: the models hold the dtype
    default = torch.get_default_dtype()
    torch.set_default_dtype(dtype)  # the latents too
    try:
        with FusedAttention():
            plain.step(0, penalties=False)  # the optimizers' states
            with Operators() as operators:
                plain.step(1, penalties=False)
    finally:
        torch.set_default_dtype(default)
    return operators.seen, plain.images_per_step


def bound(name: str, out: Path, overrides: list[str], tflops: float, tbs: float) -> dict:
    config_path, source, _, pinned = CONFIGS[name]
    overrides = [*pinned, *overrides]
    data = prepared_data(out, source)  # the plain loop's batch comes from the data
    config = load_config(config_path, [f"data.dir={data}", *overrides])
    operators, images = step_operators(config, dataset_for(config.data))
    peak, bandwidth = tflops * 1e12, tbs * 1e12
    kinds = {kind: {"operators": 0, "gflop": 0.0, "gb": 0.0, "ms": 0.0} for kind in [*KINDS, OTHER]}
    by_operator: dict[str, float] = {}
    for op, flops, moved in operators:
        ms = max(flops / peak, moved / bandwidth) * 1e3
        row = kinds[kind_of(op)]
        row["operators"] += 1
        row["gflop"] += flops / 1e9
        row["gb"] += moved / 1e9
        row["ms"] += ms
        by_operator[op] = by_operator.get(op, 0.0) + ms
    gflop = sum(row["gflop"] for row in kinds.values())
    step_ms = sum(row["ms"] for row in kinds.values())
    return {
        "config": name,
        "dtype": "bf16" if config.train.mixed_precision == "bf16" else "fp32",
        "batch_size": config.train.batch_size,
        "gflop_per_image": gflop / images,
        "operators": len(operators),
        "bound_ms": step_ms,
        "mfu_ceiling": gflop / (peak / 1e9 * step_ms / 1e3),
        # the ceiling if everything but the matrix products were fused into them
        "mfu_ceiling_fused": kinds[MATMUL]["gflop"] / (peak / 1e9 * kinds[MATMUL]["ms"] / 1e3),
        "kinds": {kind: row for kind, row in kinds.items() if row["operators"]},
        "top_ops_ms": dict(sorted(by_operator.items(), key=lambda item: -item[1])[:TOP]),
    }


def run(out: Path, names: list[str], overrides: list[str], tflops: float, tbs: float) -> dict:
    rows = [bound(name, out, overrides, tflops, tbs) for name in names]
    result = {"peak_tflops": tflops, "bandwidth_tbs": tbs, "configs": rows}
    out.mkdir(parents=True, exist_ok=True)
    (out / "roofline.json").write_text(json.dumps(result, indent=2))
    return result


def table(result: dict[str, Any]) -> str:
    lines = [f"ceilings at {result['peak_tflops']:g} TFLOP/s and {result['bandwidth_tbs']:g} TB/s"]
    for r in result["configs"]:
        lines += [
            "",
            f"{r['config']} (batch {r['batch_size']}, {r['dtype']}): {r['gflop_per_image']:.1f} "
            f"GFLOP an image, {r['operators']} operators a step",
            "| kind | operators | GFLOP | GB moved | ms at roofline |",
            "| --- | --- | --- | --- | --- |",
        ]
        for kind, row in sorted(r["kinds"].items(), key=lambda item: -item[1]["ms"]):
            lines.append(f"| {kind} | {row['operators']} | {row['gflop']:.1f} | {row['gb']:.2f} | "
                         f"{row['ms']:.3f} |")  # fmt: skip
        top = ", ".join(f"{op} {ms:.3f}" for op, ms in list(r["top_ops_ms"].items())[:5])
        lines.append(f"costliest operators (ms at roofline): {top}")
        lines.append(
            f"MFU at most {r['mfu_ceiling']:.1%} operator by operator ({r['bound_ms']:.3f} ms a "
            f"step); {r['mfu_ceiling_fused']:.1%} with all but the matrix products fused away"
        )
    return "\n".join(lines)
