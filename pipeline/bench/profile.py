"""`ganpipe bench profile`: where a training step's time goes, for the configs of
`ganpipe bench throughput`: a real `ganpipe train` process with its `profile` section on, and
the plain loop beside it (pipeline/bench/plain_loop.py), each profiled over the same number of
steps after the same warm-up. Printed as milliseconds per step by kind of work; the traces
(`DIR/<config>-pipeline-trace.json.gz`, `-plain-`) open in Perfetto.

What it answers: on a GPU, whether the device is busy (compute-bound: the kinds say which
work to make faster) or waits for the host (launch-bound: fewer kernels, CUDA graphs); and
which kinds of work the pipeline adds over the plain loop. The profiler's own cost inflates the
wall times a little (a few microseconds per operator), alike on both sides."""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

from pipeline.bench.plain_loop import PlainLoop, synchronize
from pipeline.bench.throughput import CONFIGS, machine, prepared_data, train_quietly
from pipeline.config import load_config
from pipeline.data.reader import dataset_for
from pipeline.optimizers import default_device_type
from pipeline.train.determinism import use_kernels
from pipeline.train.profiling import ProfiledSteps


def profile_config(
    name: str, out: Path, overrides: list[str], steps: int | None, warmup: int | None
) -> dict[str, Any]:
    config_path, source, default_steps, pinned = CONFIGS[name]
    overrides = [*pinned, *overrides]
    steps = steps or default_steps
    warmup = steps if warmup is None else warmup
    data = prepared_data(out, source)
    config = load_config(config_path, [f"data.dir={data}", *overrides])
    device = default_device_type()
    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp, "run")
        window = [f"train.log_every={steps}", f"profile.start={warmup}", f"profile.steps={steps}"]
        train_quietly(config_path, data, run, warmup + steps, [*window, *overrides])
        pipeline = json.loads((run / "profile" / "summary-rank0.json").read_text())
        shutil.copy(run / "profile" / "trace-rank0.json.gz", out / f"{name}-pipeline-trace.json.gz")
    use_kernels(config.train.deterministic)
    plain = PlainLoop(config, dataset_for(config.data), device)
    for k in range(warmup):
        plain.step(k)
    synchronize(device)
    profiled = ProfiledSteps(device)
    profiled.start()
    for k in range(warmup, warmup + steps):
        plain.step(k)
    baseline = profiled.stop(steps)
    profiled.save(out / f"{name}-plain-trace.json.gz")
    return {"config": name, "file": config_path, "pipeline": pipeline, "plain": baseline}


def run(
    out: Path,
    names: list[str],
    overrides: list[str],
    steps: int | None = None,
    warmup: int | None = None,
) -> dict[str, Any]:
    out.mkdir(parents=True, exist_ok=True)
    rows = [profile_config(name, out, overrides, steps, warmup) for name in names]
    result = {**machine(), "configs": rows}
    (out / "profile.json").write_text(json.dumps(result, indent=2))
    return result


def table(result: dict[str, Any]) -> str:
    """Per config: ms per step, pipeline beside plain loop, in all and by kind of work."""
    lines = [f"device: {result['device']}, {result['threads']} threads"]
    for r in result["configs"]:
        pipeline, plain = r["pipeline"], r["plain"]
        busy = "GPU busy" if pipeline["time"] == "gpu kernels" else "inside CPU operators"
        lines += [
            "",
            f"{r['config']}: ms per step over {plain['steps']} steps ({pipeline['time']})",
            "| | pipeline | plain loop |",
            "| --- | --- | --- |",
            f"| wall | {pipeline['wall_ms']:.2f} | {plain['wall_ms']:.2f} |",
            f"| {busy} | {pipeline['busy_ms']:.2f} ({pipeline['busy_share']:.0%}) | "
            f"{plain['busy_ms']:.2f} ({plain['busy_share']:.0%}) |",
        ]
        for kind, ms in pipeline["kinds_ms"].items():
            if ms or plain["kinds_ms"][kind]:
                lines.append(f"| {kind} | {ms:.2f} | {plain['kinds_ms'][kind]:.2f} |")
        top = ", ".join(f"{op['op']} {op['ms']:.2f}" for op in pipeline["top_ops"][:5])
        lines.append(f"costliest operators in the pipeline (ms): {top}")
    return "\n".join(lines)
