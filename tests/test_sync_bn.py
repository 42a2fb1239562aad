"""Cross-replica batch norm in two real gloo processes equals batch norm over the whole batch:
outputs, input gradients, parameter gradients (after DDP-style averaging) and running stats."""

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

from pipeline.train.sync_bn import CrossReplicaBatchNorm, cross_replica

BATCH = torch.randn(8, 3, 4, 4, generator=torch.Generator().manual_seed(0)) * 2 + 1
WEIGHTS = torch.randn(8, 3, 4, 4, generator=torch.Generator().manual_seed(1))


def reference():
    bn = nn.BatchNorm2d(3)
    x = BATCH.clone().requires_grad_(True)
    (bn(x) * WEIGHTS).sum().backward()
    return bn(x.detach()).detach(), x.grad, bn.weight.grad, bn.running_mean, bn.running_var


def half_batch(rank: int, init: str, out: str):
    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=2)
    bn = cross_replica(nn.Sequential(nn.BatchNorm2d(3)))[0]
    assert isinstance(bn, CrossReplicaBatchNorm)
    part = slice(4 * rank, 4 * rank + 4)
    x = BATCH[part].clone().requires_grad_(True)
    (bn(x) * WEIGHTS[part]).sum().backward()
    weight_grad = bn.weight.grad.clone()
    dist.all_reduce(weight_grad)  # what DDP does with parameter gradients (sum; no mean here)
    y = bn(x.detach()).detach()  # second forward: running stats move twice, as in reference
    torch.save((y, x.grad, weight_grad, bn.running_mean, bn.running_var), f"{out}{rank}.pt")
    dist.destroy_process_group()


def test_two_processes_normalize_with_the_global_batch(tmp_path):
    init, out = f"file://{tmp_path / 'rendezvous'}", str(tmp_path / "rank")
    mp.spawn(half_batch, args=(init, out), nprocs=2)
    y_ref, x_grad_ref, w_grad_ref, mean_ref, var_ref = reference()
    parts = [torch.load(f"{out}{r}.pt") for r in (0, 1)]
    torch.testing.assert_close(torch.cat([p[0] for p in parts]), y_ref)
    # Each rank's loss is its half of the reference loss: gradients add up to the reference.
    torch.testing.assert_close(torch.cat([p[1] for p in parts]), x_grad_ref)
    for _, _, w_grad, mean, var in parts:
        torch.testing.assert_close(w_grad, w_grad_ref)
        torch.testing.assert_close(mean, mean_ref)
        torch.testing.assert_close(var, var_ref)


def test_one_process_is_plain_batch_norm():
    bn = cross_replica(nn.Sequential(nn.BatchNorm2d(3)))
    torch.testing.assert_close(bn(BATCH), nn.BatchNorm2d(3)(BATCH))
