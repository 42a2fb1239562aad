"""The user's path through the CLI, in real processes: build, train, resume, sample, eval,
report (opened in a real headless Chromium, which must decode every embedded picture)."""

import json
import os
import re
import shutil
import socket
import subprocess

import numpy as np
import pytest
import yaml
from conftest import SMALL_MLP, ganpipe

pytestmark = pytest.mark.slow  # starts training processes

TINY = {
    "name": "tiny",
    "model": {"family": "dcgan", "z_dim": 16, "width": 8, "d_width": 8, "conditional": True},
    "train": {
        "steps": 30,
        "batch_size": 16,
        "grad_accum": 2,
        "n_dis": 2,
        "log_every": 10,
        "eval_every": 15,
        "sample_every": 15,
        "checkpoint_every": 15,
    },
    "eval": {"n_samples": 400, "n_samples_during_training": 200, "grid_size": 20},
}


@pytest.fixture(scope="module")
def trained(tmp_path_factory, digits16):
    root = tmp_path_factory.mktemp("e2e")
    config = root / "tiny.yaml"
    config.write_text(yaml.safe_dump({**TINY, "data": {"dir": str(digits16)}}))
    run = root / "run"
    ganpipe("train", "--config", config, "--run-dir", run)
    return config, run


def test_run_directory_holds_everything(trained):
    _, run = trained
    config = yaml.safe_load((run / "config.yaml").read_text())
    assert config["train"]["steps"] == 30 and config["model"]["conditional"] is True
    records = [json.loads(line) for line in (run / "metrics.jsonl").open()]
    losses = [r for r in records if "loss_d" in r]
    assert [r["step"] for r in losses] == [10, 20, 30]
    assert all(np.isfinite(r["loss_d"]) and r["img_per_s"] > 0 for r in losses)
    evals = [r for r in records if "eval/fid" in r]
    assert [r["step"] for r in evals] == [15, 30]
    assert sorted(p.name for p in (run / "samples").iterdir()) == [
        "raw-step-00000015.png",  # the trained generator beside the EMA one
        "raw-step-00000030.png",
        "step-00000015.png",
        "step-00000030.png",
    ]
    # The dashboards' health figures: gradient norms, spectral-norm sigmas (D has spectral
    # norm by default), peak memory.
    for key in ("grad_norm_d", "grad_norm_g", "sn/D_max", "sn/D_mean", "memory/host_peak_gb"):
        assert all(np.isfinite(r[key]) and r[key] > 0 for r in losses), key
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == [
        "step-00000015",
        "step-00000030",
    ]
    assert list((run / "wandb").glob("offline-run-*/run-*.wandb"))
    media = (run / "wandb").glob("offline-run-*/files/media/images/samples/*.png")
    assert {p.name.split("_")[0] for p in media} == {"ema", "raw"}  # side by side in W&B
    rank = json.loads((run / "ranks" / "rank0.json").read_text())
    assert rank["images_seen"] == 30 * 2 * 16 * 2  # steps x n_dis x batch x accumulation


def test_existing_run_needs_resume(trained):
    config, run = trained
    done = ganpipe("train", "--config", config, "--run-dir", run, check=False)
    assert done.returncode == 2
    assert "already holds checkpoints: add --resume" in done.stderr
    assert "Traceback" not in done.stderr


def test_resume_continues_from_the_checkpoint(trained):
    _, run = trained
    ganpipe("train", "--run-dir", run, "--resume", "train.steps=40")
    records = [json.loads(line) for line in (run / "metrics.jsonl").open()]
    steps = [r["step"] for r in records if "loss_d" in r]
    assert steps == [10, 20, 30, 40]  # nothing repeated, nothing skipped
    assert (run / "checkpoints" / "step-00000040").is_dir()
    run_ids = {p.name.split("-")[-1] for p in (run / "wandb").glob("offline-run-*")}
    assert len(run_ids) == 1  # the resumed run continues the same W&B run


def test_sample_is_reproducible_and_eval_prints_metrics(trained, tmp_path):
    _, run = trained
    for name in ("a", "b"):
        ganpipe("sample", "--run", run, "--n", 50, "--out", tmp_path / f"{name}.npz", "--seed", 7)
    a, b = np.load(tmp_path / "a.npz"), np.load(tmp_path / "b.npz")
    assert a["samples"].shape == (50, 1, 16, 16) and np.array_equal(a["samples"], b["samples"])
    assert a["labels"].tolist() == [i % 10 for i in range(50)]
    metrics = json.loads(ganpipe("eval", "--run", run).stdout)
    assert metrics["fid"] > 0 and metrics["fid_floor"] > 0
    assert metrics["protocol"]["n_generated"] == 400
    assert 0 <= metrics["recall"] <= 1 and sum(metrics["digit_histogram"]) == 400
    assert json.loads((run / "eval.json").read_text()) == metrics


def test_published_statistics_are_written_read_and_refused_when_made_otherwise(
    trained, digits16, tmp_path
):
    """`ganpipe stats` writes mu and sigma as pytorch-fid and clean-fid read them; `eval
    --reference-stats` gives the same FID as against the data itself, accepts a file without
    a protocol record (as those tools write) and refuses one made with another network."""
    _, run = trained
    stats = tmp_path / "digits16.npz"
    assert "wrote" in ganpipe("stats", digits16, "--out", stats).stdout
    written = np.load(stats)
    assert written["mu"].shape == (64,) and written["sigma"].shape == (64, 64)
    metrics = json.loads(ganpipe("eval", "--run", run, "--reference-stats", stats).stdout)
    assert metrics["fid_reference_stats"] == pytest.approx(metrics["fid"], rel=1e-4)
    assert "protocol recorded and matching" in metrics["protocol"]["reference_stats"]

    bare = tmp_path / "bare.npz"
    np.savez(bare, mu=written["mu"], sigma=written["sigma"])
    done = ganpipe("eval", "--run", run, "--n", 100, "--reference-stats", bare)
    metrics = json.loads(done.stdout)
    assert "protocol not recorded" in metrics["protocol"]["reference_stats"]

    wide, other = tmp_path / "wide.npz", tmp_path / "other.npz"
    np.savez(wide, mu=np.zeros(2048), sigma=np.eye(2048))
    protocol = json.loads(str(written["protocol"]))
    protocol["extractor"] = "InceptionV3"
    np.savez(other, mu=written["mu"], sigma=written["sigma"], protocol=json.dumps(protocol))
    for path, reason in ((wide, "made with another network"), (other, "another protocol")):
        refused = ganpipe("eval", "--run", run, "--reference-stats", path, check=False)
        assert refused.returncode == 2 and str(path) in refused.stderr, refused.stderr
        assert reason in refused.stderr and "Traceback" not in refused.stderr


def test_the_exported_generator_loads_without_pickle_and_draws_the_same_samples(trained, tmp_path):
    from safetensors import safe_open

    from pipeline.export import load_generator
    from pipeline.sampling import generate

    _, run = trained
    printed = ganpipe("export", "--run", run, "--out", tmp_path / "gen").stdout
    assert f"wrote {tmp_path / 'gen.safetensors'} and {tmp_path / 'gen.json'}" in printed
    spec = json.loads((tmp_path / "gen.json").read_text())
    with safe_open(tmp_path / "gen.safetensors", "pt") as weights:  # tensors, nothing else
        assert weights.metadata()["step"] == str(spec["step"]) and len(weights.keys()) > 0
    assert spec["model"]["family"] == "dcgan" and spec["data"]["shape"] == [1, 16, 16]

    samples, labels = generate(load_generator(tmp_path / "gen.json"), 50, seed=7)
    ganpipe("sample", "--run", run, "--n", 50, "--out", tmp_path / "cli.npz", "--seed", 7)
    cli = np.load(tmp_path / "cli.npz")
    assert np.array_equal(samples.numpy(), cli["samples"])
    assert np.array_equal(labels.numpy(), cli["labels"])


def test_two_dimensional_run(ring, tmp_path):
    config = tmp_path / "ring.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "data": {"dir": str(ring)},
                "model": SMALL_MLP,
                "train": {"steps": 20, "batch_size": 64, "loss": "nonsat", "eval_every": 20},
                "eval": {"n_samples": 2500},
                "tracking": {"wandb": False},
            }
        )
    )
    run = tmp_path / "run"
    ganpipe("train", "--config", config, "--run-dir", run)
    assert not (run / "wandb").exists()
    metrics = json.loads(ganpipe("eval", "--run", run).stdout)
    assert metrics["modes_total"] == 8 and 0 <= metrics["modes"] <= 8
    assert metrics["protocol"]["n_generated"] == 2500


def test_user_errors_are_one_line(tmp_path):
    done = ganpipe("train", "train.lr_dd=1", check=False)
    assert done.returncode == 2
    message = done.stderr.strip()
    assert "\n" not in message and message.startswith(
        "ganpipe: error: unknown config key train.lr_dd: did you mean train.lr_d? accepted: "
        "steps, batch_size, grad_accum, n_dis, loss, relativistic, lr_g, lr_d,"
    )
    done = ganpipe(
        "train", f"data.dir={tmp_path / 'nowhere'}", "--run-dir", tmp_path / "r", check=False
    )
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "no dataset at" in done.stderr
    assert not (tmp_path / "r").exists()  # nothing written for a run that cannot start


def tiny_dcgan(tmp_path, digits16, **train):
    config = tmp_path / "bf16.yaml"
    settings = {**TINY, "data": {"dir": str(digits16)}}
    settings["train"] = {**TINY["train"], "steps": 4, "grad_accum": 1, "n_dis": 1, **train}
    config.write_text(yaml.safe_dump(settings))
    return config


def test_no_wandb_key_means_offline_with_one_notice_and_bf16_runs(tmp_path, digits16):
    config = tiny_dcgan(tmp_path, digits16, mixed_precision="bf16")
    env = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_")}
    env["HOME"] = str(tmp_path)  # no ~/.netrc with a W&B key either
    done = ganpipe("train", "--config", config, "--run-dir", tmp_path / "run", env=env)
    notices = [line for line in done.stderr.splitlines() if line.startswith("W&B")]
    assert notices == [
        f"W&B: no API key found, logging offline to {tmp_path}/run/wandb "
        "(upload later with `wandb sync`)"
    ]
    assert list((tmp_path / "run" / "wandb").glob("offline-run-*/run-*.wandb"))
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").open()]
    assert all(np.isfinite(r["loss_g"]) for r in records if "loss_g" in r)


def closed_port() -> int:
    with socket.socket() as probe:  # bound, then closed: nothing listens there
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_an_unreachable_wandb_server_means_an_offline_run_that_resumes_with_its_id(
    tmp_path, digits16
):
    """An API key, no server (a closed port): after tracking.wandb_timeout one line says so
    and the run logs to an offline W&B run under its own id; the resumed run does the same."""
    run, server = tmp_path / "run", f"http://127.0.0.1:{closed_port()}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_")}
    env.update(HOME=str(tmp_path), WANDB_API_KEY="0" * 40, WANDB_BASE_URL=server)
    for steps, resume in ((4, []), (6, ["--resume"])):
        config = tiny_dcgan(tmp_path, digits16, steps=steps)
        done = ganpipe("train", "--config", config, "--run-dir", run, "tracking.wandb=true",
                       "tracking.wandb_timeout=2", *resume, env=env)  # fmt: skip
        notices = [line for line in done.stderr.splitlines() if line.startswith("W&B")]
        assert notices == [
            f"W&B: {server} did not answer within 2 s, logging offline to {run}/wandb "
            "(upload later with `wandb sync`)"
        ]
    run_id = json.loads((run / "run.json").read_text())["run_id"]
    offline = sorted((run / "wandb").glob("offline-run-*"))
    assert len(offline) == 2 and all(p.name.endswith(f"-{run_id}") for p in offline)
    assert all(list(p.glob("run-*.wandb")) for p in offline)


def test_a_failing_tracker_never_stops_training(tmp_path, digits16):
    config = tiny_dcgan(tmp_path, digits16)
    env = {**os.environ, "WANDB_MODE": "not-a-mode"}
    done = ganpipe("train", "--config", config, "--run-dir", tmp_path / "run", env=env)
    assert (
        "W&B could not start" in done.stderr and "continuing with metrics.jsonl only" in done.stderr
    )
    assert (tmp_path / "run" / "checkpoints" / "step-00000004").is_dir()


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


def test_the_report_renders_every_picture_in_a_browser(trained, tmp_path):
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
