"""The Dockerfile cannot be built here (no container engine), so it is checked statically:
hadolint's rules, plus what the image promises users."""

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import tomllib

ROOT = Path(__file__).parents[1]
DOCKERFILE = (ROOT / "Dockerfile").read_text()


def test_hadolint_finds_nothing():
    hadolint = shutil.which("hadolint", path=str(Path(sys.executable).parent))
    if hadolint is None:
        pytest.fail("hadolint is missing: it comes with the dev extras (pip install -e '.[dev]')")
    done = subprocess.run([hadolint, str(ROOT / "Dockerfile")], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_cuda_base_non_root_user_and_accelerate_entry():
    assert re.search(r"^FROM nvidia/cuda:[\d.]+-(cudnn-)?runtime-", DOCKERFILE, re.M)
    user = re.findall(r"^USER (\S+)", DOCKERFILE, re.M)
    assert user and not user[-1].startswith(("root", "0"))
    assert '\nENTRYPOINT ["accelerate", "launch"]' in DOCKERFILE
    default = re.search(r"^CMD (\[.*\])", DOCKERFILE, re.M).group(1)
    for path in re.findall(r'"(configs/[^"]+)"', default):
        assert (ROOT / path).is_file(), f"the image's default command names {path}"


def test_every_dependency_is_pinned():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    name = lambda requirement: re.split(r"[<>=!~ \[]", requirement)[0].lower()  # noqa: E731
    names = {name(d) for d in project["dependencies"]}
    tools = {name(d) for d in project["optional-dependencies"]["dev"]}
    pins = dict(
        line.split("==")
        for line in (ROOT / "constraints.txt").read_text().splitlines()
        if line and not line.startswith("#")
    )
    assert names - {"torch"} <= set(pins), "constraints.txt must pin each dependency but torch"
    assert tools <= set(pins), "constraints.txt must pin the test and lint tools CI installs"
    assert set(pins) <= names | tools, "constraints.txt pins only what the project installs"
    assert re.search(r"^ARG TORCH_VERSION=\d+\.\d+\.\d+$", DOCKERFILE, re.M)
