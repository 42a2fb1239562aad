"""Where a run's numbers and pictures go: a local metrics.jsonl and PNGs always, W&B (through
accelerate's tracker) when enabled. Only the main process logs. A tracker failure never stops
training: it costs one warning and the run goes on with the local files."""

from __future__ import annotations

import json
import netrc
import os
import socket
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from accelerate import Accelerator
from PIL import Image

from pipeline.config import Config


def _wandb_server() -> str:
    """The W&B server this process would log to (WANDB_BASE_URL, `wandb login --host`, or
    W&B's default)."""
    import wandb

    return wandb.setup().settings.base_url


def _has_wandb_key(server: str) -> bool:
    if os.environ.get("WANDB_API_KEY"):
        return True
    try:
        return netrc.netrc().authenticators(urlsplit(server).hostname) is not None
    except (FileNotFoundError, netrc.NetrcParseError):
        return False


def reachable(url: str, timeout: float) -> bool:
    """Whether a connection to `url`'s host opens within `timeout` seconds: a compute node
    without a route out fails here at once, where W&B itself retries for minutes."""
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        with socket.create_connection((parts.hostname, port), timeout=timeout):
            return True
    except (OSError, ValueError):
        return False


def notice(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


class Tracker:
    def __init__(self, accelerator: Accelerator, config: Config, run_dir: Path, run_id: str):
        self.accelerator = accelerator
        self.enabled = accelerator.is_main_process
        self.wandb = False
        if not self.enabled:
            return
        self.jsonl = (run_dir / "metrics.jsonl").open("a")
        if config.tracking.wandb:
            self.wandb = self._start_wandb(config, run_dir, run_id)

    def _start_wandb(self, config: Config, run_dir: Path, run_id: str) -> bool:
        """Online when a key is set and the server answers in time; otherwise an offline run
        under run_dir/wandb with the run's id, which `wandb sync` uploads and a resume on a
        connected node continues. Any other failure leaves metrics.jsonl only."""
        try:
            self._init_wandb(config, self._wandb_settings(config, run_dir, run_id))
            return True
        except Exception as err:  # any W&B failure: keep training on local files
            notice(
                f"W&B could not start ({type(err).__name__}: {_first_line(err)}); "
                "continuing with metrics.jsonl only"
            )
            return False

    @staticmethod
    def _wandb_settings(config: Config, run_dir: Path, run_id: str) -> dict[str, Any]:
        """wandb.init's arguments: offline, with one line saying why, when there is no key or
        the server does not answer within tracking.wandb_timeout."""
        import wandb

        timeout = config.tracking.wandb_timeout
        kwargs = {"dir": str(run_dir), "id": run_id, "resume": "allow", "name": config.name,
                  "settings": wandb.Settings(init_timeout=timeout)}  # fmt: skip
        if config.tracking.group:
            kwargs["group"] = config.tracking.group
        mode = os.environ.get("WANDB_MODE", "")
        if mode in ("offline", "dryrun", "disabled"):
            return kwargs
        server = _wandb_server()
        offline = f"logging offline to {run_dir}/wandb (upload later with `wandb sync`)"
        if not mode and not _has_wandb_key(server):
            notice(f"W&B: no API key found, {offline}")
            kwargs["mode"] = "offline"
        elif not reachable(server, timeout):
            notice(f"W&B: {server} did not answer within {timeout:g} s, {offline}")
            kwargs["mode"] = "offline"
        return kwargs

    def _init_wandb(self, config: Config, kwargs: dict[str, Any]) -> None:
        self.accelerator.init_trackers(
            config.tracking.project, config=config.to_dict(), init_kwargs={"wandb": kwargs}
        )

    def log(self, values: dict[str, Any], step: int) -> None:
        if not self.enabled:
            return
        self.jsonl.write(json.dumps({"step": step, **values}) + "\n")
        self.jsonl.flush()
        if self.wandb:
            numbers = {k: v for k, v in values.items() if isinstance(v, (int, float))}
            self._guard(lambda: self.accelerator.log(numbers, step=step))

    def alert(self, title: str, text: str, step: int) -> None:
        """Something people should see now: printed, in metrics.jsonl, and a W&B alert."""
        if not self.enabled:
            return
        notice(f"alert: {title}: {text}")
        self.jsonl.write(json.dumps({"step": step, "alert": title, "text": text}) + "\n")
        self.jsonl.flush()
        if self.wandb:
            run = self.accelerator.get_tracker("wandb", unwrap=True)
            self._guard(lambda: run.alert(title=title, text=text))

    def image(self, key: str, image: Image.Image, step: int) -> None:
        if self.wandb:
            import wandb

            run = self.accelerator.get_tracker("wandb", unwrap=True)
            self._guard(lambda: run.log({key: wandb.Image(image)}, step=step))

    def histogram(self, key: str, counts: list[int], step: int) -> None:
        """Counts per mode or class as a W&B histogram (one bar per bin)."""
        if self.wandb:
            import numpy as np
            import wandb

            edges = np.arange(len(counts) + 1) - 0.5
            run = self.accelerator.get_tracker("wandb", unwrap=True)
            bars = wandb.Histogram(np_histogram=(np.asarray(counts), edges))
            self._guard(lambda: run.log({key: bars}, step=step))

    def _guard(self, call) -> None:
        try:
            call()
        except Exception as err:
            reason = _first_line(err) or type(err).__name__
            notice(f"W&B logging failed ({reason}); W&B is off for the rest of this run")
            self.wandb = False

    def close(self) -> None:
        if self.enabled:
            self.jsonl.close()
        if self.wandb:  # not accelerator.end_training(): that also tears down the process group
            for tracker in self.accelerator.trackers:
                self._guard(tracker.finish)


def _first_line(err: Exception) -> str:
    return str(err).splitlines()[0] if str(err) else ""
