"""`ganpipe bench families`: train every family's digits config as shipped, evaluate each EMA
generator with the digits-FID protocol, and print one table (also written as JSON and
Markdown). Each run is a real `ganpipe train` process, timed from start to exit."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from pipeline.bench.digits_data import digits_for

CONFIGS = {
    "dcgan": "configs/quickstart.yaml",
    "biggan": "configs/biggan-digits.yaml",
    "progan": "configs/progan-digits.yaml",
    "vaegan": "configs/vaegan-digits.yaml",
    "stylegan2": "configs/stylegan2-digits.yaml",
}


def ganpipe(*args: str) -> str:
    command = [sys.executable, "-m", "pipeline.cli", *args]
    return subprocess.run(command, check=True, capture_output=True, text=True).stdout


def run(out: Path, families: list[str], overrides: list[str]) -> list[dict]:
    rows = []
    for family in families:
        run_dir, data = out / family, digits_for(out, CONFIGS[family], overrides)
        started = time.perf_counter()
        ganpipe(
            "train",
            "--config",
            CONFIGS[family],
            "--run-dir",
            str(run_dir),
            f"data.dir={data}",
            "tracking.wandb=false",
            *overrides,
        )
        minutes = (time.perf_counter() - started) / 60
        metrics = json.loads(ganpipe("eval", "--run", str(run_dir)))
        rows.append(
            {
                "family": family,
                "config": CONFIGS[family],
                "steps": metrics["step"],
                "fid": metrics["fid"],
                "fid_floor": metrics["fid_floor"],
                "fid_ratio": metrics["fid_ratio"],
                "digits_covered": metrics["digits_covered"],
                "precision": metrics["precision"],
                "recall": metrics["recall"],
                "class_accuracy": metrics.get("class_accuracy"),  # conditional runs only
                "train_minutes": minutes,
                "n_generated": metrics["protocol"]["n_generated"],
            }
        )
        print(row_line(rows[-1]), flush=True)
    (out / "families.json").write_text(json.dumps(rows, indent=2))
    (out / "families.md").write_text(table(rows))
    print("\n" + table(rows))
    return rows


def row_line(row: dict) -> str:
    return (
        f"{row['family']}: digits-FID {row['fid']:.2f} (floor {row['fid_floor']:.2f}), "
        f"{row['train_minutes']:.1f} min"
    )


def table(rows: list[dict]) -> str:
    lines = [
        "| family | config | G steps | digits-FID (EMA) | real floor | ratio | digits | "
        "precision | recall | asked-for digit | train wall time |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        asked = "-" if r["class_accuracy"] is None else f"{100 * r['class_accuracy']:.1f}%"
        lines.append(
            f"| {r['family']} | `{r['config']}` | {r['steps']} | {r['fid']:.2f} | "
            f"{r['fid_floor']:.2f} | {r['fid_ratio']:.1f} | {r['digits_covered']}/10 | "
            f"{r['precision']:.3f} | {r['recall']:.3f} | {asked} | {r['train_minutes']:.1f} min |"
        )
    return "\n".join(lines) + "\n"
