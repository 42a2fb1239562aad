"""Cross-replica batch norm (BigGAN's): in training, batch statistics over the global batch
of all processes instead of each process's own. torch's SyncBatchNorm needs a GPU; this one
runs wherever torch.distributed does (gloo on CPU, NCCL on GPU), so the tests check it."""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.distributed.nn.functional as dist_fn
from torch import nn


class CrossReplicaBatchNorm(nn.BatchNorm2d):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and dist.is_initialized() and dist.get_world_size() > 1):
            return super().forward(x)
        channels = x.shape[1]
        x32 = x.float()  # statistics in fp32 under autocast too
        local = torch.cat(
            [
                x32.sum((0, 2, 3)),
                (x32 * x32).sum((0, 2, 3)),
                x32.new_full((1,), x32.numel() / channels),
            ]
        )
        total = dist_fn.all_reduce(local)  # one all-reduce per layer; differentiable
        count = total[-1]
        mean = total[:channels] / count
        var = (total[channels:-1] / count - mean * mean).clamp_min(0)
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked += 1
                factor = self.momentum
                if factor is None:  # a cumulative average (read on the host only then)
                    factor = 1 / self.num_batches_tracked.item()
                self.running_mean.lerp_(mean, factor)
                self.running_var.lerp_(var * count / (count - 1), factor)
        out = (x32 - mean[:, None, None]) * torch.rsqrt(var + self.eps)[:, None, None]
        if self.affine:
            out = out * self.weight[:, None, None] + self.bias[:, None, None]
        return out.to(x.dtype)


def cross_replica(module: nn.Module) -> nn.Module:
    """Replace every BatchNorm2d in `module` (in place, state kept) by the cross-replica one."""
    for name, child in module.named_children():
        if type(child) is nn.BatchNorm2d:
            synced = CrossReplicaBatchNorm(
                child.num_features,
                child.eps,
                child.momentum,
                child.affine,
                child.track_running_stats,
            )
            synced.load_state_dict(child.state_dict())
            setattr(module, name, synced)
        else:
            cross_replica(child)
    return module
