"""`ganpipe report RUN`: the page is opened in a real headless Chromium, which must decode
every embedded picture."""

import json
import os
import re
import shutil
import subprocess

import pytest
from conftest import ganpipe
from test_end_to_end import trained  # noqa: F401  (the module's trained run)


def browser() -> str:
    for name in ("chromium-headless-shell", "chromium"):
        if path := shutil.which(name):
            return path
    if os.environ.get("GANPIPE_REQUIRE_BROWSER") == "1":
        pytest.fail("no Chromium: `make browser-deps` installs Debian's headless one")
    pytest.skip("no Chromium (make browser-deps)")


def rendered(page) -> str:
    """The page's DOM after Chromium loaded it and ran its image handlers."""
    command = [browser(), "--headless", "--no-sandbox", "--disable-gpu",
               "--virtual-time-budget=5000", "--dump-dom", page.as_uri()]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def test_the_report_renders_every_picture_in_a_browser(trained, tmp_path):  # noqa: F811
    _, trained_run = trained
    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    with (run / "metrics.jsonl").open("a") as f:  # an alert, then a line cut short by a kill
        f.write(json.dumps({"step": 30, "alert": "collapse", "text": "recall 0.01"}) + "\n")
        f.write('{"step": 31, "loss_d": 0.')
    done = ganpipe("report", run)
    page = run / "report.html"
    assert done.stdout.strip() == f"wrote {page}"
    dom = rendered(page)
    images = re.findall(r"<img [^>]*>", dom)
    widths = [int(w) for w in re.findall(r'data-width="(\d+)"', dom)]
    grids = len(list((run / "samples").glob("step-*.png")))
    assert len(images) >= min(grids, 4) + 3  # grids, losses, D outputs, FID at least
    assert len(widths) == len(images) and min(widths) > 0  # every picture decoded
    assert dom.count("<figure>") == len(images)  # none was replaced by its error text
    for text in ("Latest metrics", "fid", "Losses", "<b>collapse</b> recall 0.01", "dcgan"):
        assert text in dom, text


def test_a_directory_without_metrics_is_one_clear_error(tmp_path):
    done = ganpipe("report", tmp_path, check=False)
    assert done.returncode == 2 and "has no metrics.jsonl" in done.stderr
