import math

import pytest
import torch
from accelerate import Accelerator

from pipeline.config import Config, ModelConfig
from pipeline.data.description import Dataset
from pipeline.models import build_models
from pipeline.models.vaegan import kl_to_standard_normal
from pipeline.train.regularizers import VAEReconstruction
from pipeline.train.toolbox import build_toolbox


def test_kl_by_hand():
    zero = torch.zeros(4, 3)
    assert kl_to_standard_normal(zero, zero).item() == 0.0
    mean, log_var = torch.full((1, 1), 2.0), torch.full((1, 1), math.log(0.5))
    # 0.5 * (mu^2 + var - 1 - log var) = 0.5 * (4 + 0.5 - 1 - log 0.5)
    assert kl_to_standard_normal(mean, log_var).item() == pytest.approx(0.5 * (3.5 - math.log(0.5)))


def test_encoder_decoder_round_trip_shapes_and_gradients():
    config = ModelConfig(family="vaegan", z_dim=8, width=4, d_width=4)
    images = Dataset.shaped([1, 16, 16], 10)
    g, d = build_models(config, images)
    x = torch.randn(5, 1, 16, 16)
    z, mean, log_var = g.encode(x)
    assert z.shape == mean.shape == log_var.shape == (5, 8)
    assert g(z).shape == x.shape and d.features(x).shape[0] == 5
    box = build_toolbox(Config(model=config), images, Accelerator(cpu=True))
    assert [type(t) for t in box.g_terms] == [VAEReconstruction]
    loss = ((d.features(g(z)) - d.features(x)) ** 2).mean() + kl_to_standard_normal(mean, log_var)
    loss.backward()
    assert all(p.grad is not None for p in g.encoder.parameters())
