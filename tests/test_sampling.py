"""Samples split across processes come back in the order and values of one process."""

import torch
from torch import nn

from pipeline.sampling import generate, interleave


class Affine(nn.Module):
    z_dim, n_classes = 3, 4

    def __init__(self):
        super().__init__()
        self.layer = nn.Linear(3, 2)

    def forward(self, z, y):
        return self.layer(z) + y[:, None]


def test_shares_of_any_split_interleave_back_to_the_whole():
    generator = Affine()
    whole, labels = generate(generator, 23, seed=5, batch_size=4)
    for processes in (2, 3, 7):  # 7: more processes than the 6 batches, one share is empty
        shares = [
            generate(generator, 23, seed=5, batch_size=4, share=(rank, processes))[0]
            for rank in range(processes)
        ]
        assert sum(len(s) for s in shares) == 23
        torch.testing.assert_close(interleave(shares, 4), whole, rtol=0, atol=0)
    assert labels.tolist() == [i % 4 for i in range(23)]
