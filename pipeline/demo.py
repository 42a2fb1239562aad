"""`make demo`: build the digits shards, train the quickstart config, evaluate, summarise.

Each stage is the same code the `ganpipe` commands run; the equivalent command is printed
before it, so the demo doubles as a walk-through.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from pipeline.config import load_config
from pipeline.data.shards import build
from pipeline.run_samples import evaluate_run
from pipeline.train.loop import train


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--config", type=Path, default=Path("configs/quickstart.yaml"))
    parser.add_argument("--data", type=Path, help="the digits' folder (default: the config's)")
    parser.add_argument("--runs", type=Path, default=Path("runs"))
    args = parser.parse_args()
    started = time.perf_counter()

    config = load_config(args.config, [f"data.dir={args.data}"] if args.data else [])
    data, resolution = config.data.dir, config.data.shape[-1]
    say(f"ganpipe data build digits --resolution {resolution} --out {data}")
    build("digits", Path(data), resolution=resolution)

    run = args.runs / f"{config.name}-{time.strftime('%Y%m%d-%H%M%S')}"
    say(f"ganpipe train --config {args.config} --run-dir {run} data.dir={data}")
    train(config, run)

    say(f"ganpipe eval --run {run}")
    metrics = evaluate_run(run, seed=0)

    grids = sorted((run / "samples").glob("step-*.png"))
    minutes = (time.perf_counter() - started) / 60
    fid, floor = metrics["fid"], metrics["fid_floor"]
    print(f"""
== gan-pipeline quickstart: done in {minutes:.1f} min ==
run directory      {run}
EMA generator      digits-FID {fid:.3f}  vs  real-vs-real floor {floor:.3f}
                   (ratio {metrics["fid_ratio"]:.2f}; {metrics["protocol"]["n_generated"]} samples)
precision/recall   {metrics["precision"]:.3f} / {metrics["recall"]:.3f}   \
density/coverage {metrics["density"]:.3f} / {metrics["coverage"]:.3f}
digits generated   {metrics["digits_covered"]}/10 classes, histogram {metrics["digit_histogram"]}
feature extractor  {metrics["protocol"]["extractor"]}
sample grid        {grids[-1] if grids else "-"}
metrics            {run / "metrics.jsonl"}, {run / "eval.json"}
W&B (offline)      {run / "wandb"}  (upload: wandb sync {run}/wandb/offline-run-*)""")
    print(
        json.dumps({"run_dir": str(run), "fid": metrics["fid"], "fid_floor": metrics["fid_floor"]})
    )


def say(command: str) -> None:
    print(f"\n$ {command}", flush=True)


if __name__ == "__main__":
    main()
