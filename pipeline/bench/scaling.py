"""`ganpipe bench scaling`: what one training iteration of a config costs, and how it should
scale on 8 to 256 GPUs. Compute is counted (FLOPs of one forward of G and of D, on this
machine); communication and efficiency follow from stated hardware assumptions, printed with
the table so the arithmetic can be checked and redone for other hardware."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

from pipeline.config import load_config
from pipeline.data.reader import dataset_for
from pipeline.models import build_models


@dataclass(frozen=True)
class Hardware:
    """Defaults: H100 SXM nodes of 8 GPUs, NVLink inside a node, one 400 Gb/s NIC per GPU."""

    peak_tflops: float = 989.0  # dense bf16
    mfu: float = 0.30  # share of the peak a convolutional GAN step reaches (an assumption)
    nvlink_gbs: float = 360.0  # all-reduce bus bandwidth inside a node, GB/s
    network_gbs: float = 40.0  # across nodes (InfiniBand NDR), GB/s per GPU
    latency_us: float = 10.0  # per hop of one all-reduce
    gpus_per_node: int = 8


BUCKET_BYTES = 25 * 2**20  # DDP all-reduces gradients in buckets of 25 MB (torch's default)


@dataclass(frozen=True)
class Cost:
    name: str
    params_g: int
    params_d: int
    gflops_g: float  # one forward, one sample
    gflops_d: float
    micro_batch: int
    accumulation: int
    n_dis: int

    @property
    def iteration_tflops(self) -> float:
        """One iteration on one GPU: n_dis D steps and one G step, each over `accumulation`
        micro-batches. Backward ~ 2x forward; D frozen in the G step: only its input gradient."""
        b, g, d = self.micro_batch, self.gflops_g, self.gflops_d
        d_step = b * g + 3 * (2 * b) * d  # fakes without grad; D on real + fake, fwd + bwd
        g_step = 3 * b * g + 2 * b * d
        return (self.n_dis * d_step + g_step) * self.accumulation / 1e3

    @property
    def gradient_bytes(self) -> int:
        """fp32 gradients all-reduced per iteration: D's after each D step, G's once."""
        return 4 * (self.n_dis * self.params_d + self.params_g)


def measure(config_path: Path) -> Cost:
    config = load_config(config_path)
    dataset = dataset_for(config.data, require_data=False)
    G, D = build_models(config.model, dataset)
    z = torch.randn(1, G.z_dim)
    y = torch.zeros(1, dtype=torch.long) if G.n_classes else None
    with torch.no_grad():
        gflops_g = _gflops(lambda: G(z, y))
        image = G(z, y)
        gflops_d = _gflops(lambda: D(image, y))
    return Cost(
        config.name,
        sum(p.numel() for p in G.parameters()),
        sum(p.numel() for p in D.parameters()),
        gflops_g,
        gflops_d,
        config.train.batch_size,
        config.train.grad_accum,
        config.train.n_dis,
    )


def _gflops(forward) -> float:
    counter = FlopCounterMode(display=False)
    with counter:
        forward()
    return counter.get_total_flops() / 1e9


def efficiency(cost: Cost, gpus: int, hw: Hardware) -> tuple[float, float, float]:
    """(compute s, all-reduce s, efficiency) per iteration. Bandwidth term: a ring all-reduce
    sends and receives 2(n-1)/n of the bytes per GPU at the slowest link's bus bandwidth.
    Latency term: each bucket pays 2 log2(n) hops (a tree). The efficiency assumes no overlap
    of all-reduce with backward, so it is a lower bound."""
    compute = cost.iteration_tflops / (hw.peak_tflops * hw.mfu)
    bandwidth = hw.nvlink_gbs if gpus <= hw.gpus_per_node else hw.network_gbs
    buckets = math.ceil(cost.gradient_bytes / BUCKET_BYTES)
    latency = buckets * 2 * math.log2(gpus) * hw.latency_us * 1e-6
    comm = 2 * (gpus - 1) / gpus * cost.gradient_bytes / (bandwidth * 1e9) + latency
    return compute, comm, compute / (compute + comm)


def report(configs: list[Path], gpu_counts: list[int], hw: Hardware) -> str:
    lines = [
        f"hardware: {hw.peak_tflops:g} TFLOP/s peak x {hw.mfu:g} MFU per GPU; all-reduce "
        f"{hw.nvlink_gbs:g} GB/s inside a {hw.gpus_per_node}-GPU node, {hw.network_gbs:g} GB/s "
        f"across nodes, {hw.latency_us:g} us per hop",
        "",
        "| config | G params | D params | GFLOP/sample G, D | micro-batch x accum | "
        "TFLOP/iteration/GPU | all-reduce MB/iteration |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    costs = [measure(path) for path in configs]
    for c in costs:
        lines.append(
            f"| {c.name} | {c.params_g / 1e6:.1f} M | {c.params_d / 1e6:.1f} M | "
            f"{c.gflops_g:.2f}, {c.gflops_d:.2f} | {c.micro_batch} x {c.accumulation} | "
            f"{c.iteration_tflops:.2f} | {c.gradient_bytes / 1e6:.0f} |"
        )
    lines += [
        "",
        "| config | GPUs | global batch | compute ms | all-reduce ms | efficiency (no overlap) |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for c in costs:
        for n in gpu_counts:
            compute, comm, eff = efficiency(c, n, hw)
            batch = c.micro_batch * c.accumulation * n
            lines.append(
                f"| {c.name} | {n} | {batch} | {compute * 1e3:.1f} | {comm * 1e3:.1f} | {eff:.0%} |"
            )
    return "\n".join(lines)
