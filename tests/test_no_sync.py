"""A training iteration never waits for the device: no tensor is read by the host (bool, item,
float, ...) in the D and G steps, the EMA update or the non-finite guard, except when the guard
looks, every `restore_after` iterations. Checked on the CPU by watching the tensor methods that
would sync a GPU."""

import pytest
import torch
import yaml
from torch.overrides import TorchFunctionMode

from pipeline.config import load_config
from pipeline.data.reader import dataset_for, training_batches
from pipeline.models import build_models
from pipeline.optimizers import adam
from pipeline.train.distributed import prepare
from pipeline.train.ema import EMA
from pipeline.train.nonfinite import NonFiniteGuard
from pipeline.train.steps import GAN, discriminator_step, generator_step
from pipeline.train.toolbox import build_toolbox

HOST_READS = {"__bool__", "item", "tolist", "__float__", "__int__", "__index__", "numpy", "cpu"}


class HostReads(TorchFunctionMode):
    def __init__(self):
        super().__init__()
        self.seen: list[str] = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if getattr(func, "__name__", "") in HOST_READS:
            self.seen.append(func.__name__)
        return func(*args, **(kwargs or {}))


@pytest.fixture
def gan(ring, tmp_path):
    settings = {
        "data": {"dir": str(ring)},
        "model": {"family": "mlp", "width": 32, "d_width": 32, "depth": 2, "d_depth": 2},
        "train": {"batch_size": 32, "ema_decay": 0.99},
        "regularize": {"r1": 0.1, "lecam": 0.1},  # a penalty through autograd, a stateful one
    }
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(settings))
    config = load_config(tmp_path / "config.yaml", [])
    dataset = dataset_for(config.data)
    G, D = build_models(config.model, dataset)
    opt_g, opt_d = (adam(m.parameters(), 1e-3, (0.5, 0.999), "cpu") for m in (G, D))
    parts = prepare(config, G, D, opt_g, opt_d, growing=False)
    toolbox = build_toolbox(config, dataset, parts[0])
    gan = GAN(*parts, toolbox, grad_accum=1, bf16=False)
    gan.batches = training_batches(ring, 32, seed=0)
    return gan, config


def iterations(gan, ema: EMA, guard: NonFiniteGuard, steps: int) -> None:
    """The loop's iterations between two looks of the guard."""
    for step in range(steps):
        updates = [discriminator_step(gan, set(), step), generator_step(gan, 32, step)]
        ema.update(gan.g_bare, step)
        assert not guard.record([u["finite"] for u in updates])


def test_an_iteration_reads_nothing_back_from_the_device(gan):
    gan, config = gan
    ema = EMA(gan.g_bare, 0.99)
    guard = NonFiniteGuard(config.nonfinite)
    before = [p.clone() for p in gan.g_bare.parameters()]
    with HostReads() as reads:
        iterations(gan, ema, guard, config.nonfinite.restore_after - 1)
    assert reads.seen == []
    with HostReads() as reads:  # the guard's look: every flag it kept, read at once
        assert not guard.record([torch.tensor(True)] * 2)
    assert reads.seen == ["tolist"]
    assert not all(torch.equal(a, b) for a, b in zip(before, gan.g_bare.parameters(), strict=True))


def test_a_non_finite_update_is_skipped_on_the_device(gan):
    gan, _ = gan
    weights = [p.clone() for p in gan.d_bare.parameters()]
    state = {k: v.clone() for k, v in gan.toolbox.stateful.state_dict().items()}
    with torch.no_grad():
        next(gan.d_bare.parameters()).fill_(float("nan"))
        weights[0].fill_(float("nan"))
    stats = discriminator_step(gan, set(), 0)
    assert not stats["finite"]
    for before, after in zip(weights, gan.d_bare.parameters(), strict=True):
        torch.testing.assert_close(after, before, rtol=0, atol=0, equal_nan=True)
    # the optimizer's step count and LeCam's averages are those of before the update
    assert all(int(s["step"]) == 0 for s in gan.d_optimizer.state.values())
    for name, value in gan.toolbox.stateful.state_dict().items():
        assert torch.equal(value, state[name])


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_an_iteration_never_waits_for_the_gpu(gan):
    gan, config = gan
    ema = EMA(gan.g_bare, 0.99)
    guard = NonFiniteGuard(config.nonfinite)
    iterations(gan, ema, guard, 1)  # first steps create the optimizers' states
    torch.cuda.set_sync_debug_mode("error")  # a synchronizing CUDA call raises
    try:
        iterations(gan, ema, guard, config.nonfinite.restore_after - 2)
    finally:
        torch.cuda.set_sync_debug_mode("default")
