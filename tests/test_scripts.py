"""The shell scripts users run (Slurm batch scripts, CI) pass shellcheck: every variable
quoted, so a path or override with spaces or glob characters reaches Python as one argument."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]


def test_shellcheck_finds_nothing():
    shellcheck = shutil.which("shellcheck", path=str(Path(sys.executable).parent))
    if shellcheck is None:
        pytest.fail("shellcheck is missing: it comes with the dev extras (pip install -e '.[dev]')")
    scripts = [*sorted((ROOT / "slurm").glob("*.sbatch")), ROOT / ".ci" / "run",
               *sorted((ROOT / "benchmarks").glob("*.sh"))]  # fmt: skip
    done = subprocess.run([shellcheck, *map(str, scripts)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
