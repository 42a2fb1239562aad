"""`ganpipe bench scaling`: its arithmetic by hand on small cases, and the command end to end."""

import json
import math

import pytest
import torch
from conftest import ganpipe
from torch import nn

from pipeline.bench.scaling import Cost, Hardware, _gflops, efficiency

COST = Cost("toy", params_g=1000, params_d=2000, gflops_g=2.0, gflops_d=1.0,
            micro_batch=4, accumulation=2, n_dis=2)  # fmt: skip


def test_flops_of_a_linear_layer_are_two_per_multiply_add():
    layer = nn.Linear(10, 20)
    assert _gflops(lambda: layer(torch.zeros(3, 10))) * 1e9 == 2 * 3 * 10 * 20


def test_one_iteration_by_hand():
    d_step = 4 * 2.0 + 3 * 8 * 1.0  # 4 fakes without grad; D fwd+bwd on 4 real + 4 fake
    g_step = 3 * 4 * 2.0 + 2 * 4 * 1.0  # G fwd+bwd; D fwd + input gradient
    assert COST.iteration_tflops == pytest.approx((2 * d_step + g_step) * 2 / 1e3)
    assert COST.gradient_bytes == 4 * (2 * 2000 + 1000)


def test_efficiency_by_hand():
    hw = Hardware(peak_tflops=100, mfu=0.5, nvlink_gbs=100, network_gbs=10, latency_us=10)
    compute, comm, eff = efficiency(COST, 1, hw)
    assert comm == 0 and eff == 1 and compute == pytest.approx(COST.iteration_tflops / 50)
    _, comm16, _ = efficiency(COST, 16, hw)  # past one node: the network's bandwidth
    expected = 2 * 15 / 16 * COST.gradient_bytes / 10e9 + 2 * math.log2(16) * 10e-6
    assert comm16 == pytest.approx(expected)


@pytest.mark.slow
def test_the_command_prints_both_tables():
    out = ganpipe("bench", "scaling", "configs/ring.yaml", "--gpus", "1,8,16").stdout
    assert out.count("| ring |") == 4, out  # one cost row, three GPU counts
    info = json.loads(ganpipe("model-info", "--config", "configs/ring.yaml").stdout)
    assert f"| ring | {info['G'] / 1e6:.1f} M | {info['D'] / 1e6:.1f} M |" in out
