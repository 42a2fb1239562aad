"""`ganpipe bench quality`: image quality against compute time on the bundled digits.

Each entry trains as `ganpipe train` does (a real process) with `train.budget_minutes`, which
checkpoints as each budget of CPU time per thread passes; each budget's EMA generator is then
measured with the digits-FID protocol (BENCHMARKS.md section 3). The classic DCGAN baseline
(pipeline/bench/classic_dcgan.py, a plain loop) counts its budgets the same way and is
measured the same way. Budgets count CPU time: on an idle machine with as many cores as
threads they are about wall-clock minutes. Run the bench alone all the same: with more than
one thread, a thread waiting for another that other load has pushed off its core spins, and
the spinning counts (a BigGAN run reached step 1,510 at 5 minutes beside other work, against
4,140 alone). A finished seed is kept, an unfinished run resumes: an interrupted bench goes
on where it stopped.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path
from statistics import mean, stdev

from pipeline.bench import classic_dcgan
from pipeline.bench.digits_data import digits_at, digits_for
from pipeline.data.description import read_dataset
from pipeline.metrics.evaluate import protocol_for
from pipeline.run_samples import evaluate_run
from pipeline.runs import checkpoint

CONFIGS = {  # entry -> the shipped digits config it trains
    "quickstart": "configs/quickstart.yaml",
    "dcgan": "configs/dcgan-digits.yaml",
    "biggan": "configs/biggan-digits.yaml",
    "progan": "configs/progan-digits.yaml",
    "vaegan": "configs/vaegan-digits.yaml",
    "stylegan2": "configs/stylegan2-digits.yaml",
}
BASELINES = {"classic-16": 16, "classic-32": 32}  # the classic DCGAN at ngf = ndf = width
ENTRIES = [*CONFIGS, *BASELINES]
METRICS = ("fid", "fid_ratio", "precision", "recall", "density", "coverage", "class_accuracy")


def run(
    out: Path,
    entries: list[str],
    budgets: list[float],
    seeds: int,
    n: int,
    threads: int,
    overrides: list[str],
) -> dict:
    records = [
        one_seed(out, entry, seed, budgets, n, threads, overrides)
        for entry in entries
        for seed in range(seeds)
    ]
    summary = summarise(records)
    result = {"budgets": budgets, "threads": threads, "records": records, "summary": summary}
    (out / "results.json").write_text(json.dumps(result, indent=2))
    (out / "quality.md").write_text(tables(summary, budgets))
    plot(summary, out / "quality.png", threads)
    return result


def one_seed(
    out: Path, entry: str, seed: int, budgets: list[float], n: int, threads: int,
    overrides: list[str],
) -> dict:  # fmt: skip
    folder = out / entry
    record_file = folder / f"seed{seed}.json"
    if record_file.is_file():
        record = json.loads(record_file.read_text())
        if record["budgets_asked"] == budgets and record["n"] == n:
            return record  # finished by an earlier invocation
    run_dir = folder / f"seed{seed}"
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    if entry in BASELINES:
        data = digits_at(out, classic_dcgan.RESOLUTION)
        points = baseline(run_dir, data, budgets, BASELINES[entry], seed, n, env)
        config = "pipeline/bench/classic_dcgan.py"
    else:
        config = CONFIGS[entry]
        data = digits_for(out, config, overrides)
        points = pipeline_run(run_dir, config, data, budgets, seed, n, env, overrides)
    record = {"entry": entry, "config": config, "seed": seed, "n": n, "threads": threads,
              "budgets_asked": budgets, "points": points}  # fmt: skip
    record_file.write_text(json.dumps(record, indent=2))
    for point in points:
        print(f"{entry} seed {seed}: {line(point)}", flush=True)
    return record


def pipeline_run(
    run_dir: Path, config: str, data: Path, budgets: list[float], seed: int, n: int, env: dict,
    overrides: list[str],
) -> list[dict]:  # fmt: skip
    """Train to the last budget (or the config's last step), then measure each budget's
    checkpoint. Evaluations during training are left out: they would spend the budget."""
    resume = ["--resume"] if checkpoint.published(run_dir) else []
    settings = [
        f"data.dir={data}",
        f"seed={seed}",
        "tracking.wandb=false",
        f"train.budget_minutes={json.dumps(budgets)}",
        "train.keep_checkpoints=1000",
        "train.eval_every=1000000000",
        "train.checkpoint_every=1000000000",
    ]
    command = ["train", "--config", config, "--run-dir", str(run_dir), *resume, *settings]
    ganpipe(*command, *overrides, env=env)
    marks = [r for r in read_jsonl(run_dir / "metrics.jsonl") if "budget/minutes" in r]
    points, final = [], checkpoint.latest(run_dir)
    for budget in budgets:
        mark = next((r for r in marks if r["budget/minutes"] == budget), None)
        if mark is None:  # the run reached train.steps first: its end stands for this budget
            state = checkpoint.load(final / checkpoint.STATE)
            step, minutes, wall = state["step"], state["budget_minutes"], None
        else:
            step, minutes = mark["step"], mark["budget/cpu_minutes"]
            wall = mark["budget/wall_minutes"]
        metrics = evaluate_run(run_dir, str(step), n, seed)
        points.append(point(budget, step, minutes, wall, metrics, ended=mark is None))
    return points


def baseline(
    run_dir: Path, data: Path, budgets: list[float], width: int, seed: int, n: int, env: dict
) -> list[dict]:
    command = [sys.executable, "-m", "pipeline.bench.classic_dcgan", "--data", str(data),
               "--out", str(run_dir), "--budgets", ",".join(map(str, budgets)),
               "--width", str(width), "--seed", str(seed)]  # fmt: skip
    run_checked(command, env)
    protocol = protocol_for(read_dataset(data))
    points = []
    for budget in budgets:
        path = run_dir / f"{classic_dcgan.SAVE_PREFIX}{budget:g}.pt"
        state = classic_dcgan.load_state(path)
        samples = classic_dcgan.samples(state, width, n, seed)
        metrics = protocol.measure(samples, None, seed)
        wall = state["budget_wall_seconds"] / 60
        points.append(point(budget, state["step"], state["budget_minutes"], wall, metrics))
    return points


def point(budget, step, minutes, wall, metrics: dict, ended: bool = False) -> dict:
    """One budget's measurement: when it was taken and what it measured."""
    values = {k: metrics.get(k) for k in (*METRICS, "fid_floor", "digits_covered")}
    return {"budget": budget, "step": step, "cpu_minutes": minutes, "wall_minutes": wall,
            "ended_before": ended, **values}  # fmt: skip


def line(p: dict) -> str:
    ended = " (run ended before this budget)" if p["ended_before"] else ""
    return (
        f"{p['budget']:g} min: step {p['step']}, digits-FID {p['fid']:.2f} "
        f"(ratio {p['fid_ratio']:.2f}), precision {p['precision']:.3f}, "
        f"recall {p['recall']:.3f}{ended}"
    )


def summarise(records: list[dict]) -> list[dict]:
    """Mean and standard error over seeds, per entry and budget."""
    groups: dict[tuple[str, float], list[dict]] = {}
    configs = {}
    for record in records:
        configs[record["entry"]] = record["config"]
        for p in record["points"]:
            groups.setdefault((record["entry"], p["budget"]), []).append(p)
    rows = []
    for (entry, budget), points in groups.items():
        row = {"entry": entry, "config": configs[entry], "budget": budget, "seeds": len(points)}
        for key in (*METRICS, "step", "fid_floor"):
            values = [p[key] for p in points if p[key] is not None]
            if values:
                row[key] = mean(values)
                row[f"{key}_se"] = stdev(values) / math.sqrt(len(values)) if len(values) > 1 else 0
                row[f"{key}_range"] = [min(values), max(values)]
        row["ended_before"] = any(p["ended_before"] for p in points)
        rows.append(row)
    return rows


def tables(summary: list[dict], budgets: list[float]) -> str:
    """The digits-FID ratio of every entry at every budget, then each entry in full."""
    entries = list(dict.fromkeys(r["entry"] for r in summary))
    by = {(r["entry"], r["budget"]): r for r in summary}
    head = "| entry | " + " | ".join(f"{b:g} min" for b in budgets) + " |"
    lines = ["digits-FID / real floor (mean ± s.e. over seeds; * the run ended earlier)", "",
             head, "|" + " --- |" * (len(budgets) + 1)]  # fmt: skip
    for entry in entries:
        cells = []
        for b in budgets:
            r = by.get((entry, b))
            cells.append("-" if r is None else f"{r['fid_ratio']:.2f} ± {r['fid_ratio_se']:.2f}"
                         + ("*" if r["ended_before"] else ""))  # fmt: skip
        lines.append(f"| {entry} | " + " | ".join(cells) + " |")
    lines += ["", "| entry | minutes | seeds | G steps | digits-FID | ratio | precision | recall | "
              "density | coverage | asked-for digit |", "|" + " --- |" * 11]  # fmt: skip
    for r in summary:
        asked = "-" if "class_accuracy" not in r else f"{100 * r['class_accuracy']:.1f}%"
        lines.append(
            f"| {r['entry']} | {r['budget']:g} | {r['seeds']} | {r['step']:.0f} | "
            f"{r['fid']:.2f} ± {r['fid_se']:.2f} | {r['fid_ratio']:.2f} | "
            f"{r['precision']:.3f} | {r['recall']:.3f} | {r['density']:.3f} | "
            f"{r['coverage']:.3f} | {asked} |"
        )
    return "\n".join(lines) + "\n"


def plot(summary: list[dict], path: Path, threads: int) -> None:
    """FID ratio against minutes, a line per entry (the mean) in a band (the seeds' range)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(7, 4.5))
    for entry in dict.fromkeys(r["entry"] for r in summary):
        rows = sorted((r for r in summary if r["entry"] == entry), key=lambda r: r["budget"])
        x = [r["budget"] for r in rows]
        style = "--" if entry in BASELINES else "-"
        axes.plot(x, [r["fid_ratio"] for r in rows], style, marker="o", label=entry)
        low, high = zip(*(r["fid_ratio_range"] for r in rows), strict=True)
        axes.fill_between(x, low, high, alpha=0.2)
    axes.axhline(1.5, color="grey", linewidth=0.8, linestyle=":", label="goal (1.5)")
    axes.set_yscale("log")
    axes.set_xlabel(f"minutes (CPU time per thread, {threads} threads)")
    axes.set_ylabel("digits-FID / real floor")
    axes.set_title("Quality against compute on the bundled digits")
    axes.legend(fontsize=8)
    axes.grid(alpha=0.3, which="both")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(text) for text in path.read_text().splitlines() if text.strip()]


def ganpipe(*args: str, env: dict) -> None:
    run_checked([sys.executable, "-m", "pipeline.cli", *args], env)


def run_checked(command: list[str], env: dict) -> None:
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    if done.returncode:
        tail = "\n".join(done.stderr.strip().splitlines()[-15:])
        raise RuntimeError(f"{' '.join(command[:4])} ... exited {done.returncode}:\n{tail}")
