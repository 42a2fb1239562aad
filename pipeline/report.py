"""`ganpipe report RUN`: RUN/report.html, one self-contained page (every picture embedded) for
people without W&B: the curves of metrics.jsonl, the newest sample grids, the latest metrics
with their protocol, the alerts and the resolved config."""

from __future__ import annotations

import base64
import html
import io
import json
import math
from pathlib import Path
from typing import Any

from pipeline.errors import UserError

NEWEST_GRIDS = 4
# Panels of curves: a title and the keys it plots, in this order; keys not named here get a
# panel each under their prefix (eval/, guard/, ...), so nothing logged is left out.
PANELS = [
    ("Losses", ["loss_d", "loss_g"]),
    ("D on real and generated", ["d_real", "d_fake"]),
    ("Gradient norms", ["grad_norm_d", "grad_norm_g"]),
    ("Distances to the data (lower is better)", ["eval/fid", "eval/kid", "eval/reverse_kl"]),
    (
        "Precision, recall, density, coverage",
        ["eval/precision", "eval/recall", "eval/density", "eval/coverage"],
    ),
    ("Modes", ["eval/modes", "eval/digits_covered"]),
    ("Throughput (images/s)", ["img_per_s"]),
]
SKIPPED = {"step", "images_seen", "global_batch", "processes"}


def read_records(run_dir: Path) -> list[dict[str, Any]]:
    path = run_dir / "metrics.jsonl"
    if not path.is_file():
        raise UserError(f"{run_dir} has no metrics.jsonl: is it a run directory?")
    records = []
    for line in path.read_text().splitlines():
        try:
            records.append(json.loads(line))
        except ValueError:
            continue  # a line cut short by a kill: the rest of the file is still good
    return records


def series(records: list[dict[str, Any]]) -> dict[str, tuple[list[int], list[float]]]:
    """Every numeric key's (steps, values), finite values only."""
    found: dict[str, tuple[list[int], list[float]]] = {}
    for record in records:
        for key, value in record.items():
            is_number = isinstance(value, (int, float)) and not isinstance(value, bool)
            if key in SKIPPED or not is_number or not math.isfinite(value):
                continue
            steps, values = found.setdefault(key, ([], []))
            steps.append(record["step"])
            values.append(value)
    return found


def panels(found: dict[str, Any]) -> list[tuple[str, list[str]]]:
    chosen = [(title, [k for k in keys if k in found]) for title, keys in PANELS]
    named = {k for _, keys in PANELS for k in keys}
    rest: dict[str, list[str]] = {}
    for key in sorted(found):
        if key not in named:
            rest.setdefault(key.split("/")[0] if "/" in key else "other", []).append(key)
    chosen += [(prefix, keys) for prefix, keys in rest.items()]
    return [(title, keys) for title, keys in chosen if keys]


def plot(title: str, keys: list[str], found: dict[str, Any]) -> bytes:
    """One panel as a PNG."""
    import matplotlib

    matplotlib.use("Agg")  # no display: files only
    from matplotlib import pyplot

    figure, axes = pyplot.subplots(figsize=(5.2, 3.2), dpi=96)
    for key in keys:
        steps, values = found[key]
        axes.plot(steps, values, marker="o" if len(steps) < 20 else None, markersize=3, label=key)
    axes.set_title(title, fontsize=10)
    axes.set_xlabel("step")
    axes.grid(alpha=0.3)
    axes.legend(fontsize=7)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    pyplot.close(figure)
    return buffer.getvalue()


def image_tag(png: bytes, caption: str) -> str:
    """An embedded picture. It records its decoded width when it loads and says so in words
    when it cannot be shown."""
    data = base64.b64encode(png).decode()
    return (
        f'<figure><img src="data:image/png;base64,{data}" alt="{html.escape(caption)}" '
        'onload="this.dataset.width = this.naturalWidth" '
        "onerror=\"this.replaceWith('picture could not be shown')\">"
        f"<figcaption>{html.escape(caption)}</figcaption></figure>"
    )


def latest_metrics(run_dir: Path, records: list[dict[str, Any]]) -> tuple[str, dict[str, Any]]:
    """`ganpipe eval`'s eval.json when there is one, else the last evaluation in training."""
    path = run_dir / "eval.json"
    if path.is_file():
        values = json.loads(path.read_text())
        return f"ganpipe eval, step {values.get('step')}", values
    evaluated = [r for r in records if any(k.startswith("eval/") for k in r)]
    if not evaluated:
        return "no evaluation yet", {}
    last = evaluated[-1]
    values = {k.removeprefix("eval/"): v for k, v in last.items() if k.startswith("eval/")}
    return f"evaluation during training, step {last['step']}", values


def table(values: dict[str, Any]) -> str:
    rows = []
    for key, value in values.items():
        if isinstance(value, float):
            shown = f"{value:.4g}"
        elif isinstance(value, dict):
            lines = (f"{html.escape(k)}: {html.escape(str(v))}" for k, v in value.items())
            shown = "<br>".join(lines)
            rows.append(f"<tr><th>{html.escape(key)}</th><td>{shown}</td></tr>")
            continue
        elif isinstance(value, list) and len(value) > 20:
            shown = f"{len(value)} values, {sum(value)} in all"
        else:
            shown = str(value)
        rows.append(f"<tr><th>{html.escape(key)}</th><td>{html.escape(shown)}</td></tr>")
    return "<table>" + "".join(rows) + "</table>"


STYLE = """
body { font: 14px system-ui, sans-serif; margin: 2em; color: #222; max-width: 1200px; }
h1 { font-size: 1.4em; } h2 { font-size: 1.1em; margin-top: 2em; }
.pictures { display: flex; flex-wrap: wrap; gap: 1em; }
figure { margin: 0; }
figure img { max-width: 560px; height: auto; image-rendering: pixelated; }
figcaption { font-size: 0.85em; color: #555; text-align: center; }
table { border-collapse: collapse; } th, td { border: 1px solid #ccc; padding: 3px 8px;
text-align: left; vertical-align: top; } th { background: #f4f4f4; font-weight: 600; }
pre { background: #f6f6f6; padding: 1em; overflow-x: auto; }
"""


def report(run_dir: Path) -> Path:
    """Write RUN/report.html and return its path."""
    records = read_records(run_dir)
    found = series(records)
    curves = [image_tag(plot(title, keys, found), title) for title, keys in panels(found)]
    grids = sorted((run_dir / "samples").glob("step-*.png"))[-NEWEST_GRIDS:]
    grid_tags = [image_tag(p.read_bytes(), p.stem.replace("-", " ")) for p in reversed(grids)]
    source, values = latest_metrics(run_dir, records)
    alerts = [r for r in records if "alert" in r]
    alert_rows = "".join(
        f"<li>step {r['step']}: <b>{html.escape(r['alert'])}</b> "
        f"{html.escape(r.get('text', ''))}</li>"
        for r in alerts
    )
    config = run_dir / "config.yaml"
    last_step = max((r["step"] for r in records), default=0)
    sections = [
        f"<h1>{html.escape(run_dir.name)}</h1>",
        f"<p>{len(records)} records up to step {last_step}; {len(alerts)} alert(s).</p>",
        f"<h2>Latest metrics ({html.escape(source)})</h2>",
        table(values) if values else "<p>none yet</p>",
        "<h2>Samples (newest first, fixed noise)</h2>",
        f'<div class="pictures">{"".join(grid_tags) or "<p>none yet</p>"}</div>',
        "<h2>Curves</h2>",
        f'<div class="pictures">{"".join(curves) or "<p>nothing logged yet</p>"}</div>',
        "<h2>Alerts</h2>",
        f"<ul>{alert_rows}</ul>" if alerts else "<p>none</p>",
        "<h2>Config</h2>",
        f"<pre>{html.escape(config.read_text()) if config.is_file() else 'missing'}</pre>",
    ]
    page = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(run_dir.name)}: gan-pipeline report</title>"
        f"<style>{STYLE}</style></head><body>{''.join(sections)}</body></html>"
    )
    out = run_dir / "report.html"
    partial = out.with_suffix(".tmp")
    partial.write_text(page)
    partial.replace(out)
    return out
