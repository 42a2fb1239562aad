"""StyleGAN2's networks (pipeline/models/stylegan2.py): the official parameter counts, the
modulated convolution against its formula and a per-sample loop, style mixing, truncation."""

import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import yaml
from conftest import ganpipe

from pipeline.export import load_generator
from pipeline.models.stylegan2 import Discriminator, Generator, modulated_conv2d
from pipeline.runs import checkpoint
from pipeline.sampling import generate


def count(network: torch.nn.Module) -> int:
    return sum(p.numel() for p in network.parameters())


# Counted from NVlabs' stylegan2-ada-pytorch training/networks.py as its train.py builds them.
OFFICIAL = [
    # --cfg=stylegan2 at 1024 px: 8 mapping layers, residual D, minibatch-stddev group 4
    (dict(shape=(3, 1024, 1024)), dict(shape=(3, 1024, 1024)), 30_370_060, 29_012_513),
    # --cfg=cifar: 2 mapping layers, D architecture `orig`, group 32; unconditional and with
    # --cond=1 (10 classes)
    (dict(shape=(3, 32, 32), mapping_layers=2),
     dict(shape=(3, 32, 32), architecture="orig", mbstd_group=32), 19_947_539, 20_720_641),
    (dict(shape=(3, 32, 32), mapping_layers=2, n_classes=10),
     dict(shape=(3, 32, 32), architecture="orig", mbstd_group=32, n_classes=10),
     20_215_315, 23_089_664),
]  # fmt: skip


@pytest.mark.parametrize("g_options, d_options, g_count, d_count", OFFICIAL)
def test_parameter_counts_equal_the_official_networks(g_options, d_options, g_count, d_count):
    assert count(Generator(**g_options)) == g_count
    assert count(Discriminator(**d_options)) == d_count


def test_modulation_and_demodulation_follow_the_formula():
    """1x1 kernels, one output channel: each sample's kernel is w * s, divided by its norm."""
    x = torch.randn(2, 3, 4, 4, dtype=torch.float64)
    weight = torch.randn(1, 3, 1, 1, dtype=torch.float64)
    styles = torch.randn(2, 3, dtype=torch.float64)
    out = modulated_conv2d(x, weight, styles)
    for i in range(2):
        kernel = weight[0, :, 0, 0] * styles[i]
        kernel = kernel / (kernel.square().sum() + 1e-8).sqrt()
        expected = (x[i] * kernel[:, None, None]).sum(0)
        assert torch.allclose(out[i, 0], expected)
    plain = modulated_conv2d(x, weight, styles, demodulate=False)[1, 0]
    assert torch.allclose(plain, (x[1] * (weight[0, :, 0, 0] * styles[1])[:, None, None]).sum(0))


def test_the_grouped_convolution_equals_a_loop_over_samples():
    x = torch.randn(3, 4, 8, 8, dtype=torch.float64)
    weight = torch.randn(5, 4, 3, 3, dtype=torch.float64)
    styles = torch.randn(3, 4, dtype=torch.float64)
    together = modulated_conv2d(x, weight, styles)
    for i in range(3):
        kernel = weight * styles[i][None, :, None, None]
        kernel = kernel / (kernel.square().sum(dim=(1, 2, 3), keepdim=True) + 1e-8).sqrt()
        assert torch.allclose(together[i : i + 1], F.conv2d(x[i : i + 1], kernel, padding=1))


def small_generator(**options) -> Generator:
    return Generator((3, 16, 16), z_dim=8, w_dim=8, mapping_layers=2, channel_base=128,
                     channel_max=16, **options)  # fmt: skip


def test_style_mixing_takes_the_later_layers_from_a_second_latent():
    torch.manual_seed(0)
    generator = small_generator(style_mixing=1.0).train()
    z = torch.randn(4, 8)
    ws = generator.ws(z, None)
    first = generator.mapping(z, None, track=False)
    unmixed = [k for k in range(generator.num_ws) if torch.allclose(ws[:, k], first)]
    assert unmixed and unmixed == list(range(len(unmixed))) and len(unmixed) < generator.num_ws
    later = ws[:, len(unmixed) :]
    assert torch.allclose(later, later[:, :1].expand_as(later))  # one second w for the rest
    generator.eval()  # no mixing outside training
    assert torch.allclose(generator.ws(z, None), first[:, None].expand_as(ws))


def test_two_latents_mixed_change_different_layers_of_the_image():
    """Coarse layers from one latent and fine ones from another: the image differs from
    both, and only the fine layers' latent changes it when the coarse one is fixed."""
    torch.manual_seed(0)
    generator = small_generator().eval()
    w1, w2 = generator.mapping(torch.randn(2, 8), None).chunk(2)
    coarse = 3  # the 4x4 and 8x8 layers' ws
    mixed = torch.cat([w1[:, None].expand(-1, coarse, -1),
                       w2[:, None].expand(-1, generator.num_ws - coarse, -1)], 1)  # fmt: skip
    pure1 = w1[:, None].expand(-1, generator.num_ws, -1)
    pure2 = w2[:, None].expand(-1, generator.num_ws, -1)
    images = [generator.synthesis(ws, "const") for ws in (mixed, pure1, pure2)]
    assert not torch.allclose(images[0], images[1]) and not torch.allclose(images[0], images[2])


def test_truncation_at_zero_gives_every_latent_the_mean_image():
    torch.manual_seed(0)
    generator = small_generator(style_mixing=0.0).train()
    for _ in range(5):
        generator(torch.randn(16, 8))  # the mean of w is tracked while training
    generator.eval()
    generator.truncation = 0.0
    images = generator.synthesis(generator.ws(torch.randn(4, 8), None), "const")
    assert torch.allclose(images, images[:1].expand_as(images))
    mean_ws = generator.mapping.w_avg[None, None].expand(1, generator.num_ws, -1)
    # batches of 4 and of 1 take different convolution paths: equal to float32 rounding
    assert torch.allclose(images[:1], generator.synthesis(mean_ws, "const"), atol=1e-5)
    assert generator.mapping.w_avg.abs().sum() > 0


def test_conditional_networks_take_classes_and_give_a_score_per_sample():
    generator = small_generator(n_classes=10).eval()
    discriminator = Discriminator((3, 16, 16), n_classes=10, channel_base=128, channel_max=16)
    y = torch.tensor([0, 1, 2, 3])
    images = generator(torch.randn(4, 8), y)
    assert images.shape == (4, 3, 16, 16) and torch.isfinite(images).all()
    scores = discriminator(images, y)
    assert scores.shape == (4,) and not torch.allclose(scores, discriminator(images, y.flip(0)))


def test_lazy_regularization_scales_the_optimizer_as_the_paper_does():
    """k = 4 (path length, G) and 16 (R1, D): lr x k/(k+1), betas ** (k/(k+1)); other
    families keep their settings."""
    from pipeline.config import load_config
    from pipeline.train.schedule import optimizer_settings

    settings = ["model.family=stylegan2", "regularize.r1=10", "regularize.r1_every=16",
                "regularize.path_length=2", "train.lr_g=0.0025", "train.lr_d=0.0025",
                "train.betas_g=[0.0, 0.99]", "train.betas_d=[0.0, 0.99]"]  # fmt: skip
    rates = optimizer_settings(load_config(None, settings))
    assert rates["g"][0] == pytest.approx(0.0025 * 4 / 5)
    assert rates["g"][1] == pytest.approx((0.0, 0.99 ** (4 / 5)))
    assert rates["d"][0] == pytest.approx(0.0025 * 16 / 17)
    assert rates["d"][1] == pytest.approx((0.0, 0.99 ** (16 / 17)))
    plain = optimizer_settings(load_config(None, ["regularize.r1=10", "regularize.r1_every=16"]))
    assert plain["d"] == (4e-4, (0.0, 0.999))


def test_the_ema_half_life_is_counted_in_images_and_ramps_up():
    """StyleGAN2's CIFAR setting: half-life 500k images, ramp-up 0.05, 64 images a step: the
    decay halves the weight of the past every half-life, capped early by 5% of images seen."""
    from pipeline.train.ema import EMA

    ema = EMA(torch.nn.Linear(1, 1), 0.999, half_life=500_000, rampup=0.05, images_per_step=64)
    assert ema.decay_at(0) == pytest.approx(0.5 ** (64 / (64 * 0.05)))
    late = 1_000_000  # steps: 64M images, far past the ramp
    assert ema.decay_at(late) == pytest.approx(0.5 ** (64 / 500_000))
    assert ema.decay_at(late) ** (500_000 / 64) == pytest.approx(0.5)
    assert ema.decay_at(1000) < ema.decay_at(10_000) < ema.decay_at(late)


@pytest.mark.slow
def test_a_small_stylegan2_trains_with_its_regularizers_resumes_and_evaluates(digits16, tmp_path):
    """Lazy R1 and path length (both due within the run), the half-life EMA, style mixing:
    the run ends finite, its checkpoint holds the path-length mean, a resume continues and
    `ganpipe eval` draws the same samples twice (fixed noise outside training)."""
    settings = {
        "data": {"dir": str(digits16)},
        "model": {"family": "stylegan2", "z_dim": 16, "width": 16, "d_width": 16,
                  "channel_base": 256, "mapping_layers": 2, "minibatch_stddev": 4},
        "train": {"steps": 8, "batch_size": 8, "loss": "nonsat", "lr_g": 0.0025,
                  "lr_d": 0.0025, "betas_g": [0.0, 0.99], "betas_d": [0.0, 0.99],
                  "ema_half_life": 1000, "ema_rampup": 0.05, "log_every": 4,
                  "eval_every": 8, "sample_every": 8, "checkpoint_every": 4},
        "regularize": {"r1": 0.1, "r1_every": 4, "path_length": 2.0, "path_length_every": 4},
        "eval": {"n_samples": 100, "n_samples_during_training": 100, "grid_size": 16},
        "tracking": {"wandb": False},
    }  # fmt: skip
    config, run = tmp_path / "sg2.yaml", tmp_path / "run"
    config.write_text(yaml.safe_dump(settings))
    ganpipe("train", "--config", config, "--run-dir", run)
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    losses = [r for r in records if "loss_g" in r]
    assert [r["step"] for r in losses] == [4, 8] and all(math.isfinite(r["loss_g"]) for r in losses)
    state = checkpoint.load(checkpoint.latest(run) / checkpoint.STATE)
    assert state["toolbox"]["path_length.mean"] > 0  # measured at steps 0 and 4
    ganpipe("train", "--run-dir", run, "--resume", "train.steps=12")
    assert checkpoint.manifest_of(checkpoint.latest(run))["step"] == 12
    first, second = (json.loads(ganpipe("eval", "--run", run).stdout) for _ in range(2))
    assert first["fid"] == second["fid"] and first["fid"] > 0

    def sample(*options) -> np.ndarray:
        out = tmp_path / f"samples{len(options)}.npz"
        ganpipe("sample", "--run", run, "--n", 64, "--seed", 3, "--out", out, *options)
        return np.load(out)["samples"]

    plain, truncated = sample(), sample("--truncation", 0.3)  # psi 0.3: w near its mean
    assert truncated.std(axis=0).mean() < 0.6 * plain.std(axis=0).mean()
    ganpipe("export", "--run", run, "--out", tmp_path / "gen")  # tracked mean, fixed noise
    exported, _ = generate(load_generator(tmp_path / "gen.json"), 64, seed=3)
    assert np.array_equal(exported.numpy(), plain)


def test_under_bf16_only_the_highest_resolutions_compute_in_it():
    """As NVlabs keep the low resolutions in fp32: with bf16_resolutions=1 at 16 px only G's
    16 px block and D's 16 px block run in bf16; the mapping networks and D's 4x4 epilogue
    stay in fp32, and so do D's scores."""
    labels = torch.tensor([0, 1, 2, 0])
    generator = Generator((1, 16, 16), z_dim=8, w_dim=8, n_classes=3, mapping_layers=2,
                          channel_base=64, channel_max=8, bf16_resolutions=1)  # fmt: skip
    discriminator = Discriminator((1, 16, 16), n_classes=3, channel_base=64, channel_max=8,
                                  mbstd_group=2, bf16_resolutions=1)  # fmt: skip
    dtypes = {}

    def record(name):
        def hook(module, inputs, output):
            dtypes[name] = (output[0] if isinstance(output, tuple) else output).dtype

        return hook

    generator.mapping.register_forward_hook(record("G mapping"))
    for block in generator.blocks:
        block.register_forward_hook(record(f"G {block.conv1.resolution}"))
    for side, block in zip((16, 8), discriminator.blocks, strict=True):
        block.register_forward_hook(record(f"D {side}"))
    discriminator.conv.register_forward_hook(record("D 4"))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        scores = discriminator(generator(torch.randn(4, 8), labels), labels)
    bf16, fp32 = torch.bfloat16, torch.float32
    assert dtypes == {"G mapping": fp32, "G 4": fp32, "G 8": fp32, "G 16": bf16,
                      "D 16": bf16, "D 8": fp32, "D 4": fp32}  # fmt: skip
    assert scores.dtype == fp32 and torch.isfinite(scores).all()


def test_the_cifar10_config_builds_the_official_networks():
    info = json.loads(ganpipe("model-info", "--config", "configs/stylegan2-cifar10.yaml").stdout)
    assert (info["G"], info["D"]) == (19_947_539, 20_720_641)
    conditional = ganpipe(
        "model-info", "--config", "configs/stylegan2-cifar10.yaml", "model.conditional=true"
    )
    assert json.loads(conditional.stdout)["G"] == 20_215_315


def test_the_path_length_is_the_length_of_the_jacobian_transposed_times_a_direction():
    from pipeline.train.regularizers import path_lengths

    torch.manual_seed(0)
    generator = small_generator().eval().double()
    ws = generator.ws(torch.randn(1, 8, dtype=torch.float64), None).detach().requires_grad_(True)
    images = generator.synthesis(ws, "const")
    directions = torch.randn_like(images)
    length = path_lengths(images, ws, directions)
    jacobian = torch.autograd.functional.jacobian(lambda w: generator.synthesis(w, "const"), ws)
    transposed = (jacobian * directions[..., None, None, None]).sum(dim=(0, 1, 2, 3))  # (1, L, D)
    assert length.item() == pytest.approx(transposed.square().sum(-1).mean().sqrt().item())
    (grad,) = torch.autograd.grad(length.sum(), generator.blocks[0].conv1.weight)
    assert grad.abs().sum() > 0  # the penalty reaches the synthesis weights


def test_no_parameter_is_zero_dimensional():
    """DeepSpeed broadcasts each parameter through a byte view, which a 0-d tensor refuses
    (the noise strengths were scalars, and ZeRO runs failed at start-up)."""
    pair = (
        Generator((1, 16, 16), z_dim=8, w_dim=8, channel_base=64, channel_max=8),
        Discriminator((1, 16, 16), channel_base=64, channel_max=8),
    )
    assert all(p.dim() > 0 for network in pair for p in network.parameters())
