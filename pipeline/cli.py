"""`ganpipe` and its subcommands. Thin: parse, load the config, call the stage."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from pathlib import Path

from pipeline.data.sources import SOURCES
from pipeline.errors import UserError

TEMPERATURE = "rejection sampling temperature, default: the run's rejection.temperature (0 = off)"
CHECKPOINT = "latest (default), best, a step number, or a checkpoint directory"


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="ganpipe", description=__doc__)
    sub = top.add_subparsers(dest="command", required=True)

    data = sub.add_parser("data", help="build datasets").add_subparsers(
        dest="action", required=True
    )
    build = data.add_parser("build", help="write WebDataset shards and index.json")
    build.add_argument("source", choices=SOURCES)
    build.add_argument("path", nargs="?", type=Path, help="image-folder: DIR; npz: FILE")
    build.add_argument("--out", type=Path, required=True, help="output directory")
    build.add_argument("--archive", type=Path, help="cifar10: cifar-10-python.tar.gz")
    build.add_argument("--resolution", type=int, default=32, help="image side in pixels")
    build.add_argument(
        "--channels",
        type=int,
        choices=(1, 3),
        default=3,
        help="image-folder, cifar10, npz: 1 = greyscale, 3 = RGB (digits: 1)",
    )
    build.add_argument("--shard-size", type=int, help="samples per shard (images 200, mog 10000)")
    build.add_argument(
        "--samples", type=int, default=100_000, help="training samples (mog, stacked-digits)"
    )
    build.add_argument("--seed", type=int, default=0, help="sampling seed (mog, stacked-digits)")
    build.add_argument("--workers", type=int, help="image encoding processes (default: all cores)")

    train = sub.add_parser("train", help="train a GAN (also: python -m pipeline train)")
    train.add_argument("--config", type=Path, help="YAML experiment file (configs/)")
    train.add_argument("--run-dir", type=Path, help="default: runs/<name>")
    train.add_argument("--resume", action="store_true", help="continue from the latest checkpoint")
    train.add_argument("overrides", nargs="*", metavar="key=value", help="e.g. train.lr_d=4e-4")

    sample = sub.add_parser("sample", help="write EMA-generator samples to .npz")
    sample.add_argument("--run", type=Path, required=True)
    sample.add_argument("--n", type=int, required=True)
    sample.add_argument("--out", type=Path, required=True)
    sample.add_argument("--seed", type=int, default=0)
    sample.add_argument("--truncation", type=float, help="default: eval.truncation (0 = off)")
    sample.add_argument("--temperature", type=float, help=TEMPERATURE)

    export = sub.add_parser("export", help="the EMA generator as safetensors + JSON")
    export.add_argument("--run", type=Path, required=True)
    export.add_argument("--out", type=Path, help="path prefix, default RUN/export/generator")

    report = sub.add_parser("report", help="RUN/report.html: curves, grids, metrics, alerts")
    report.add_argument("run", type=Path)

    info = sub.add_parser("model-info", help="print the models' parameter counts as JSON")
    info.add_argument("--config", type=Path, required=True)
    info.add_argument("overrides", nargs="*", metavar="key=value")

    bench = sub.add_parser("bench", help="benchmarks").add_subparsers(
        dest="benchmark", required=True
    )
    families = bench.add_parser("families", help="every family's digits config: FID and time")
    families.add_argument("--out", type=Path, default=Path("bench/families"))
    families.add_argument("--families", default="dcgan,biggan,progan,vaegan,stylegan2")
    families.add_argument("overrides", nargs="*", metavar="key=value", help="applied to every run")
    quality = bench.add_parser("quality", help="digits-FID against compute time, with a baseline")
    quality.add_argument("--out", type=Path, default=Path("bench/quality"))
    quality.add_argument("--entries", default=None, help="default: every family and baseline")
    quality.add_argument("--budgets", default="2,5,10,20,30", help="minutes of CPU per thread")
    quality.add_argument("--seeds", type=int, default=3)
    quality.add_argument("--n", type=int, default=10000, help="samples per evaluation")
    quality.add_argument("--threads", type=int, default=2, help="torch threads of each run")
    quality.add_argument("overrides", nargs="*", metavar="key=value", help="applied to the runs")
    collapse = bench.add_parser("collapse", help="mode collapse on ring, grid, stacked digits")
    collapse.add_argument("--out", type=Path, default=Path("bench/collapse"))
    collapse.add_argument("--suite", default="ring,grid,stacked")
    collapse.add_argument("--seeds", type=int, default=10)
    collapse.add_argument("--recipes", help="default: vanilla, best and every ablation")
    collapse.add_argument(
        "--recipes-file", type=Path, default=Path("configs/collapse/recipes.yaml")
    )
    collapse.add_argument("--jobs", type=int, default=1, help="runs at once (cores are shared)")
    collapse.add_argument("overrides", nargs="*", metavar="key=value", help="applied to every run")
    throughput = bench.add_parser(
        "throughput", help="training, loader and evaluation speed beside a plain PyTorch loop"
    )
    throughput.add_argument("--out", type=Path, default=Path("bench/throughput"))
    throughput.add_argument("--configs", default="mlp-ring,dcgan-32,biggan-32")
    throughput.add_argument("--steps", type=int, help="steps per timed window")
    throughput.add_argument("--repeats", type=int, default=3, help="timed turns of each side")
    throughput.add_argument("overrides", nargs="*", metavar="key=value", help="applied to all")
    profile = bench.add_parser(
        "profile", help="where a step's time goes, pipeline beside plain loop; traces"
    )
    profile.add_argument("--out", type=Path, default=Path("bench/profile"))
    profile.add_argument("--configs", default="dcgan-32", help="names as in bench throughput")
    profile.add_argument("--steps", type=int, help="steps profiled (as bench throughput's)")
    profile.add_argument("--warmup", type=int, help="steps before them (default: as many)")
    profile.add_argument("overrides", nargs="*", metavar="key=value", help="applied to all")
    roofline = bench.add_parser(
        "roofline", help="the most MFU a config's step can reach, operator by operator"
    )
    roofline.add_argument("--out", type=Path, default=Path("bench/roofline"))
    roofline.add_argument("--configs", default="biggan-128", help="names as in bench throughput")
    roofline.add_argument("--peak-tflops", type=float, default=989.0, help="dense, run's dtype")
    roofline.add_argument("--bandwidth-tbs", type=float, default=3.35, help="memory, TB/s")
    roofline.add_argument("overrides", nargs="*", metavar="key=value", help="applied to all")
    scaling = bench.add_parser("scaling", help="per-iteration compute, all-reduce, GPU scaling")
    scaling.add_argument("configs", nargs="+", type=Path, help="experiment YAML files")
    scaling.add_argument("--gpus", default="8,16,32,64,128,256")
    # Unset flags keep the defaults of pipeline/bench/scaling.py (H100 SXM nodes).
    scaling.add_argument("--mfu", type=float, help="share of peak reached")
    scaling.add_argument("--peak-tflops", type=float, help="per GPU, bf16 dense")
    scaling.add_argument("--nvlink-gbs", type=float, help="in-node all-reduce GB/s")
    scaling.add_argument("--network-gbs", type=float, help="cross-node GB/s per GPU")
    scaling.add_argument("--latency-us", type=float, help="per all-reduce hop")

    evaluate = sub.add_parser("eval", help="evaluate a checkpoint (default the latest), print JSON")
    evaluate.add_argument("--run", type=Path, required=True)
    evaluate.add_argument("--checkpoint", help=CHECKPOINT)
    evaluate.add_argument("--n", type=int, default=None, help="samples (default eval.n_samples)")
    evaluate.add_argument("--seed", type=int, default=0)
    evaluate.add_argument("--temperature", type=float, help=TEMPERATURE)
    evaluate.add_argument(
        "--extractor", choices=("auto", "digits", "inception"), help="default: eval.extractor"
    )
    evaluate.add_argument("--inception-weights", help="default: eval.inception_weights")
    evaluate.add_argument(
        "--reference-stats", type=Path, metavar="FILE.npz",
        help="also the FID against these statistics (mu, sigma: pytorch-fid / clean-fid layout)",
    )  # fmt: skip

    stats = sub.add_parser("stats", help="write a dataset's FID statistics (mu, sigma) as .npz")
    stats.add_argument("data", type=Path, help="a dataset directory (`ganpipe data build`)")
    stats.add_argument("--out", type=Path, required=True, help="FILE.npz")
    stats.add_argument("--split", choices=("train", "test"), help="default: eval's reference")
    stats.add_argument("--extractor", choices=("auto", "digits", "inception"), default="auto")
    stats.add_argument("--inception-weights", help="torch-fidelity's weights file")
    return top


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except UserError as err:
        print(f"ganpipe: error: {err}", file=sys.stderr)
        return 2


def cmd_data(args: argparse.Namespace) -> int:
    from pipeline.data.shards import build

    path = args.archive if args.source == "cifar10" else args.path
    index = build(
        args.source,
        args.out,
        args.shard_size,
        args.workers,
        path=path,
        resolution=args.resolution,
        channels=args.channels,
        n_train=args.samples,
        seed=args.seed,
    )
    counts = {name: split["samples"] for name, split in index["splits"].items()}
    print(f"wrote {args.out}: {counts} samples, shape {index['shape']}, {index['classes']} classes")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from pipeline.config import load_config
    from pipeline.runs import directory as runs
    from pipeline.train.loop import train
    from pipeline.train.stop import EXIT_STOPPED

    if args.config is None and args.resume and args.run_dir:
        config = load_config(args.run_dir / runs.CONFIG, args.overrides)  # the run's own config
    else:
        config = load_config(args.config, args.overrides)
    finished = train(config, args.run_dir or Path("runs") / config.name, resume=args.resume)
    code = 0 if finished else EXIT_STOPPED
    _exit_distributed(code)
    return code


def _exit_distributed(code: int) -> None:
    """gloo can abort at interpreter exit after a multi-process run: leave cleanly instead."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def cmd_sample(args: argparse.Namespace) -> int:
    import numpy as np

    from pipeline.run_samples import draw

    drawn = draw(args.run, args.n, args.seed, args.truncation, args.temperature)
    arrays = {"samples": drawn.samples.numpy()}
    if drawn.labels is not None:
        arrays["labels"] = drawn.labels.numpy()
    rejection = drawn.how.get("rejection")
    if rejection:
        arrays["acceptance"] = np.float64(rejection["acceptance"])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez(args.out, **arrays)
    kept = f" (rejection sampling kept {rejection['acceptance']:.1%})" if rejection else ""
    print(f"wrote {args.n} samples from step {drawn.step} to {args.out}{kept}")
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from pipeline.run_samples import evaluate_run

    metrics = evaluate_run(
        args.run,
        args.checkpoint,
        args.n,
        args.seed,
        args.temperature,
        args.extractor,
        args.inception_weights,
        args.reference_stats,
    )
    if metrics is not None:  # the main process
        print(json.dumps(metrics, indent=2))
    _exit_distributed(0)  # shared by `accelerate launch` processes: leave as training does
    return 0


def cmd_stats(args: argparse.Namespace) -> int:
    from pipeline.metrics.reference_stats import dataset_stats

    print(dataset_stats(args.data, args.out, args.split, args.extractor, args.inception_weights))
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from pipeline.export import export

    weights, spec = export(args.run, args.out or args.run / "export" / "generator")
    print(f"wrote {weights} and {spec}")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from pipeline.report import report

    print(f"wrote {report(args.run)}")
    return 0


def cmd_model_info(args: argparse.Namespace) -> int:
    from pipeline.config import load_config
    from pipeline.data.reader import dataset_for
    from pipeline.models import build_models

    config = load_config(args.config, args.overrides)
    dataset = dataset_for(config.data, require_data=False)
    # Counting needs no particular weights: the default init skips orthogonal init's QR
    # decompositions (20 s for the ImageNet BigGAN).
    g, d = build_models(dataclasses.replace(config.model, init="default"), dataset)
    count = lambda model: sum(p.numel() for p in model.parameters())  # noqa: E731
    info = {
        "G": count(g),
        "D": count(d),
        "family": config.model.family,
        "shape": dataset.shape,
        "classes": dataset.classes if config.model.conditional else 0,
    }
    print(json.dumps(info))
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    if args.benchmark == "collapse":
        return bench_collapse(args)
    if args.benchmark == "scaling":
        return bench_scaling(args)
    if args.benchmark in ("throughput", "profile", "roofline"):
        return bench_speed(args)
    if args.benchmark == "quality":
        return bench_quality(args)
    from pipeline.bench import families

    families.run(args.out, pick("--families", args.families, families.CONFIGS), args.overrides)
    return 0


def bench_speed(args: argparse.Namespace) -> int:
    """throughput, profile and roofline: the same named configs, measured three ways."""
    from pipeline.bench import profile, roofline, throughput

    names = pick("--configs", args.configs, throughput.CONFIGS)
    if args.benchmark == "throughput":
        result = throughput.run(args.out, names, args.overrides, args.steps, args.repeats)
        print(throughput.table(result))
    elif args.benchmark == "profile":
        result = profile.run(args.out, names, args.overrides, args.steps, args.warmup)
        print(profile.table(result))
    else:
        result = roofline.run(args.out, names, args.overrides, args.peak_tflops, args.bandwidth_tbs)
        print(roofline.table(result))
    return 0


def bench_quality(args: argparse.Namespace) -> int:
    from pipeline.bench import quality

    entries = pick("--entries", args.entries, quality.ENTRIES) if args.entries else quality.ENTRIES
    try:
        budgets = sorted(float(b) for b in args.budgets.split(","))
    except ValueError:
        raise UserError(f"--budgets: expected minutes like 2,5,10, got {args.budgets!r}") from None
    if args.seeds < 1 or args.threads < 1 or args.n < 10 or min(budgets) <= 0:
        raise UserError("--seeds and --threads must be at least 1, --n 10, --budgets above 0")
    result = quality.run(args.out, entries, budgets, args.seeds, args.n, args.threads,
                         args.overrides)  # fmt: skip
    print("\n" + quality.tables(result["summary"], budgets))
    print(f"written: {args.out}/results.json, quality.md, quality.png")
    return 0


def bench_collapse(args: argparse.Namespace) -> int:
    from pipeline.bench import collapse, recipes

    book = recipes.load(args.recipes_file)
    suites = pick("--suite", args.suite, collapse.SUITES)
    chosen = pick("--recipes", args.recipes, book.recipes) if args.recipes else list(book.recipes)
    if args.seeds < 1 or args.jobs < 1:
        raise UserError("--seeds and --jobs must be at least 1")
    collapse.run(args.out, book, suites, chosen, args.seeds, args.jobs, args.overrides)
    return 0


def bench_scaling(args: argparse.Namespace) -> int:
    from pipeline.bench.scaling import Hardware, report

    flags = ("peak_tflops", "mfu", "nvlink_gbs", "network_gbs", "latency_us")
    hardware = Hardware(**{k: getattr(args, k) for k in flags if getattr(args, k) is not None})
    try:
        gpus = [int(n) for n in args.gpus.split(",")]
    except ValueError:
        raise UserError(f"--gpus: expected numbers like 8,16,32, got {args.gpus!r}") from None
    print(report(args.configs, gpus, hardware))
    return 0


def pick(flag: str, text: str, known) -> list[str]:
    """A comma-separated choice, checked against the known names."""
    chosen = text.split(",")
    unknown = sorted(set(chosen) - set(known))
    if unknown:
        raise UserError(f"{flag}: unknown {', '.join(unknown)}; choose from {', '.join(known)}")
    return chosen


COMMANDS = {
    "data": cmd_data,
    "train": cmd_train,
    "sample": cmd_sample,
    "eval": cmd_eval,
    "stats": cmd_stats,
    "export": cmd_export,
    "report": cmd_report,
    "model-info": cmd_model_info,
    "bench": cmd_bench,
}

if __name__ == "__main__":
    sys.exit(main())
