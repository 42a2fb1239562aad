"""Where a training step's time goes: torch's profiler over a few steps, summed by kind of work
(convolutions and matrix products, normalization, attention, optimizer, copies, the rest).

On a GPU the figures are the device's kernel time, and "busy" is the share of the wall time
the device spent computing (a host-bound step leaves it idle); on a CPU they are the time
inside operators, and the rest of the wall time is the interpreter's."""

from __future__ import annotations

import gzip
import json
import re
import shutil
import time
from pathlib import Path
from typing import Any

import torch
from torch.autograd import DeviceType
from torch.profiler import ProfilerActivity, profile

from pipeline.config import ProfileConfig

# First match wins, searched in the operator's lower-case name (autograd's backward nodes too).
KINDS = {
    "attention": r"softmax|attention",
    "conv / matmul": r"conv|mm|matmul|linear|addmv|einsum|\bmv\b|vdot",
    "normalization": r"batch_norm|layer_norm|group_norm",
    "optimizer / EMA": r"adam|_foreach",
    "communication": r"nccl|gloo|all_reduce|all_gather|\bbroadcast\b",
    "copy / cast": r"copy|\bcat\b|clone|contiguous|pin_memory",
}
OTHER = "elementwise / other"
TOP = 15  # operators listed one by one


def kind_of(op: str) -> str:
    name = op.lower()
    return next((kind for kind, words in KINDS.items() if re.search(words, name)), OTHER)


class ProfiledSteps:
    """A profiled stretch of steps: `start()`, the steps, then `stop(steps)` for the summary;
    `save(path)` writes the trace, gzipped."""

    def __init__(self, device: torch.device | str):
        self.on_gpu = torch.device(device).type == "cuda"
        activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if self.on_gpu else [])
        self.profiler = profile(activities=activities)

    def start(self) -> None:
        self.profiler.start()
        self.started = time.perf_counter()

    def stop(self, steps: int) -> dict[str, Any]:
        if self.on_gpu:
            torch.cuda.synchronize()  # the window's kernels end inside it
        wall = time.perf_counter() - self.started
        self.profiler.stop()
        return self.summary(steps, wall)

    def summary(self, steps: int, wall: float) -> dict[str, Any]:
        """Milliseconds per step: in all, busy (device kernels, or inside CPU operators), by
        kind and for the costliest operators."""
        # Operators, as the host called them (a kernel's time counts for the operator that
        # launched it, so kernels are not counted twice).
        ops = [e for e in self.profiler.key_averages() if e.device_type == DeviceType.CPU]
        timed = [(e.key, self._self_us(e) / 1e3 / steps, e.count / steps) for e in ops]
        kinds = dict.fromkeys([*KINDS, OTHER], 0.0)
        for op, ms, _ in timed:
            kinds[kind_of(op)] += ms
        busy = sum(kinds.values())
        top = sorted(timed, key=lambda row: -row[1])[:TOP]
        return {
            "time": "gpu kernels" if self.on_gpu else "cpu operators",
            "steps": steps,
            "wall_ms": wall * 1e3 / steps,
            "busy_ms": busy,
            "busy_share": busy / (wall * 1e3 / steps),
            "kinds_ms": kinds,
            "top_ops": [{"op": op, "ms": ms, "calls": calls} for op, ms, calls in top],
        }

    def _self_us(self, event) -> float:
        """Time of the operator itself, without the operators it calls: its own kernels' time
        on a GPU, its own CPU time otherwise."""
        return event.self_device_time_total if self.on_gpu else event.self_cpu_time_total

    def save(self, path: Path) -> None:
        plain = path.with_suffix("")  # trace.json.gz -> trace.json
        self.profiler.export_chrome_trace(str(plain))
        with plain.open("rb") as source, gzip.open(path, "wb") as target:
            shutil.copyfileobj(source, target)
        plain.unlink()


class StepProfiler:
    """The `profile` section in a run: profiles the iterations after step `start` up to
    `start + steps` and writes profile/trace-rank{r}.json.gz and profile/summary-rank{r}.json
    into the run directory."""

    def __init__(self, config: ProfileConfig, run_dir: Path, rank: int, device: torch.device):
        self.config, self.rank, self.device = config, rank, device
        self.dir = run_dir / "profile"
        self.window: ProfiledSteps | None = None
        self.first: int | None = None  # the step the window opened at: one window a run
        self.profiled = 0  # iterations in it (a rollback may move the step back)

    def after(self, step: int) -> str | None:
        """Called after each iteration with the steps done; a line to print when a window ends."""
        if self.window is not None:
            self.profiled += 1
            return self.close(step) if self.profiled >= self.config.steps else None
        if self.config.steps and self.first is None and step == self.config.start:
            self.window, self.first = ProfiledSteps(self.device), step
            self.window.start()
        return None

    def close(self, step: int) -> str | None:
        """Ends a window still open (also when the run ended or stopped inside it)."""
        window, self.window = self.window, None
        if window is None:
            return None
        if not self.profiled:  # the run ended at the step the window opened at
            window.profiler.stop()
            return None
        summary = window.stop(self.profiled) | {"from_step": self.first, "to_step": step}
        self.dir.mkdir(parents=True, exist_ok=True)
        window.save(self.dir / f"trace-rank{self.rank}.json.gz")
        (self.dir / f"summary-rank{self.rank}.json").write_text(json.dumps(summary, indent=2))
        return f"profile of steps {self.first}-{step} in {self.dir}: {headline(summary)}"


def headline(summary: dict[str, Any]) -> str:
    kinds = ", ".join(f"{kind} {ms:.2f}" for kind, ms in summary["kinds_ms"].items() if ms)
    share = f"{summary['busy_share']:.0%}"
    busy = f"GPU busy {share}" if summary["time"] == "gpu kernels" else f"{share} in CPU operators"
    return f"{summary['wall_ms']:.2f} ms a step, {busy} ({kinds} ms)"
