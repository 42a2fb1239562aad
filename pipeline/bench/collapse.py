"""`ganpipe bench collapse`: train each recipe on each collapse benchmark for each seed (real
`ganpipe train` processes), sample the final generator with the protocol of BENCHMARKS.md,
and print mean and standard error next to the published rows.

Layout under --out: data/<suite>/ (shards), <suite>/<recipe>/seed<k>/ (the run),
seed<k>.npz (the evaluated samples, key `samples`), seed<k>.json (its metrics),
results.json and collapse.md. Finished seeds are kept: rerunning the command resumes.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pipeline.bench.published import PUBLISHED
from pipeline.bench.recipes import RecipeBook
from pipeline.data.shards import build
from pipeline.metrics.evaluate import measure


@dataclass(frozen=True)
class Suite:
    config: str  # the vanilla base config
    source: str  # `ganpipe data build` source
    samples: int  # generated samples per evaluation
    build_options: dict


SUITES = {
    "ring": Suite("configs/collapse/ring.yaml", "mog-ring", 2500, {}),
    "grid": Suite("configs/collapse/grid.yaml", "mog-grid", 2500, {}),
    "stacked": Suite(
        "configs/collapse/stacked.yaml",
        "stacked-digits",
        26_000,
        {"resolution": 8, "n_train": 60_000},
    ),
}


def run(
    out: Path,
    book: RecipeBook,
    suites: list[str],
    recipes: list[str],
    seeds: int,
    jobs: int = 1,
    extra: list[str] = (),
) -> list[dict]:
    data = {suite: prepare(out / "data" / suite, SUITES[suite]) for suite in suites}
    tasks = [(s, r, k) for s in suites for r in recipes if book.applies(r, s) for k in range(seeds)]
    threads = max(1, (os.cpu_count() or 1) // jobs)

    def task(item: tuple[str, str, int]) -> dict:
        suite, recipe, seed = item
        overrides = book.overrides(recipe, suite)
        return one_seed(out, suite, recipe, seed, data[suite], [*overrides, *extra], threads)

    with ThreadPoolExecutor(max_workers=jobs) as pool:
        rows = list(pool.map(task, tasks))
    summary = summarise(rows)
    (out / "results.json").write_text(json.dumps({"runs": rows, "summary": summary}, indent=2))
    text = tables(summary, suites)
    (out / "collapse.md").write_text(text)
    print("\n" + text, flush=True)
    return rows


def prepare(data_dir: Path, suite: Suite) -> Path:
    if not (data_dir / "index.json").is_file():
        build(suite.source, data_dir, **suite.build_options)
    return data_dir


def ganpipe(*args: str, threads: int) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    command = [sys.executable, "-m", "pipeline.cli", *map(str, args)]
    subprocess.run(command, check=True, capture_output=True, text=True, env=env)


def one_seed(
    out: Path, suite: str, recipe: str, seed: int, data: Path, overrides: list[str], threads: int
) -> dict:
    folder = out / suite / recipe
    result_file = folder / f"seed{seed}.json"
    if result_file.is_file():  # finished by an earlier invocation
        return json.loads(result_file.read_text())
    run_dir, samples_file = folder / f"seed{seed}", folder / f"seed{seed}.npz"
    config = SUITES[suite].config
    started = time.perf_counter()
    ganpipe(
        "train",
        "--config",
        config,
        "--run-dir",
        run_dir,
        f"data.dir={data}",
        f"seed={seed}",
        *overrides,
        threads=threads,
    )
    n = SUITES[suite].samples
    ganpipe(
        "sample", "--run", run_dir, "--n", n, "--seed", seed, "--out", samples_file, threads=threads
    )
    minutes = (time.perf_counter() - started) / 60  # training and sampling (critic included)
    drawn = np.load(samples_file)
    metrics = measure(torch.from_numpy(drawn["samples"]), None, data, seed)
    row = {
        "suite": suite,
        "recipe": recipe,
        "seed": seed,
        "modes": metrics["modes"],
        "modes_total": metrics["modes_total"],
        "high_quality_percent": metrics.get("high_quality_percent"),
        "reverse_kl": metrics["reverse_kl"],
        "minutes": minutes,
        "acceptance": float(drawn["acceptance"]) if "acceptance" in drawn else None,
        "overrides": overrides,
        "protocol": metrics["protocol"],
    }
    result_file.write_text(json.dumps(row, indent=2))
    print(
        f"{suite} {recipe} seed {seed}: modes {row['modes']}/{row['modes_total']}, "
        f"reverse KL {row['reverse_kl']:.4f}, {minutes:.1f} min",
        flush=True,
    )
    return row


def mean_and_error(values: list[float]) -> tuple[float, float | None]:
    """Mean and standard error; no error for one seed or an infinite value (KL of a G
    with no high-quality sample)."""
    if len(values) < 2 or not np.isfinite(values).all():
        return float(np.mean(values)), None
    return float(np.mean(values)), float(np.std(values, ddof=1) / len(values) ** 0.5)


def summarise(rows: list[dict]) -> list[dict[str, Any]]:
    groups: dict[tuple[str, str], list[dict]] = {}
    for row in rows:
        groups.setdefault((row["suite"], row["recipe"]), []).append(row)
    summary = []
    for (suite, recipe), runs in groups.items():
        entry = {"suite": suite, "recipe": recipe, "seeds": len(runs)}
        for key in ("modes", "high_quality_percent", "reverse_kl", "minutes"):
            values = [float(r[key]) for r in runs if r[key] is not None]
            entry[key] = mean_and_error(values) if values else None
        entry["seeds_with_every_mode"] = sum(r["modes"] == r["modes_total"] for r in runs)
        entry["modes_total"] = runs[0]["modes_total"]
        summary.append(entry)
    return summary


def cell(value: Any, digits: int) -> str:
    if value is None:
        return "-"
    if isinstance(value, (tuple, list)):
        mean, error = value
        return f"{mean:.{digits}f}" + ("" if error is None else f" ± {error:.{digits}f}")
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def tables(summary: list[dict], suites: list[str]) -> str:
    parts = []
    for suite in suites:
        ours = [e for e in summary if e["suite"] == suite]
        total = ours[0]["modes_total"] if ours else "?"
        parts += [
            f"### {suite}: {total} modes, {SUITES[suite].samples} samples, "
            "mean ± s.e. over seeds\n",
            "| method | modes | seeds with every mode | high-quality % | reverse KL | min / seed |",
            "| --- | --- | --- | --- | --- | --- |",
        ]
        for method, (modes, quality, kl) in PUBLISHED[suite].items():
            parts.append(
                f"| {method} | {cell(modes, 1)} | | {cell(quality, 1)} | {cell(kl, 2)} | |"
            )
        for e in ours:
            parts.append(
                f"| **{e['recipe']} (ours)** | {cell(e['modes'], 1)} | "
                f"{e['seeds_with_every_mode']}/{e['seeds']} | "
                f"{cell(e['high_quality_percent'], 1)} | {cell(e['reverse_kl'], 3)} | "
                f"{cell(e['minutes'], 1)} |"
            )
        parts.append("")
    return "\n".join(parts)
