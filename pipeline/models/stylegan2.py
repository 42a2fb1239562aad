"""StyleGAN2 (Karras et al. 2020) in plain PyTorch, shaped as NVlabs' stylegan2-ada-pytorch
configures it, so its parameter counts are the official networks'.

- Generator: a mapping network (equalized learning rate, lr multiplier 0.01, a tracked mean
  of w for truncation; a class embedding concatenated to z when conditional), a learned 4x4
  constant, modulated 3x3 convolutions with weight demodulation run as one grouped
  convolution, per-pixel noise with learned strengths, FIR ([1, 3, 3, 1]) up-sampling and
  skip (toRGB) outputs summed across resolutions; style mixing while training.
- Discriminator: residual (or plain `orig`) blocks with FIR down-sampling, minibatch
  standard deviation, equalized learning rate; projection conditioning (a mapped class
  embedding dotted with the last features) when conditional.
- Mixed precision as NVlabs run it: under bf16 autocast only the `bf16_resolutions` highest
  resolutions of G and D compute in bf16; the mapping networks, the low resolutions and D's
  4x4 epilogue stay in fp32 (where few channels carry the most weight per value).
"""

from __future__ import annotations

import contextlib
import math

import torch
import torch.nn.functional as F
from torch import nn

from pipeline.models.layers import minibatch_stddev

FIR = (1.0, 3.0, 3.0, 1.0)  # the binomial resampling filter
LRELU_GAIN = math.sqrt(2)


def fir_kernel(device=None, dtype=None) -> torch.Tensor:
    taps = torch.tensor(FIR, device=device, dtype=dtype)
    kernel = torch.outer(taps, taps)
    return kernel / kernel.sum()


def fir_filter(x: torch.Tensor, pad: tuple[int, int], gain: float = 1.0) -> torch.Tensor:
    """Each channel convolved with the 4x4 FIR kernel, padded by `pad` (before, after)."""
    channels = x.shape[1]
    kernel = (fir_kernel(x.device, x.dtype) * gain).expand(channels, 1, 4, 4)
    x = F.pad(x, (pad[0], pad[1], pad[0], pad[1]))
    return F.conv2d(x, kernel, groups=channels)


def upsample(x: torch.Tensor) -> torch.Tensor:
    """x2: zeros between the pixels, then the FIR filter (gain 4 keeps the mean)."""
    n, c, h, w = x.shape
    spread = x.new_zeros(n, c, h, 2, w, 2)
    spread[:, :, :, 0, :, 0] = x
    return fir_filter(spread.view(n, c, 2 * h, 2 * w), (2, 1), gain=4.0)


def activate(x: torch.Tensor, bias: torch.Tensor | None, clamp: float | None,
             linear: bool = False) -> torch.Tensor:  # fmt: skip
    if bias is not None:
        x = x + bias.view(1, -1, *([1] * (x.dim() - 2))).to(x.dtype)
    if not linear:
        x = F.leaky_relu(x, 0.2) * LRELU_GAIN
    return x.clamp(-clamp, clamp) if clamp else x


class EqualLinear(nn.Module):
    """A fully connected layer whose weights are stored at N(0, 1) / lr_multiplier and
    scaled at run time (equalized learning rate)."""

    def __init__(self, c_in: int, c_out: int, activation: bool = False,
                 lr_multiplier: float = 1.0, bias_init: float = 0.0):  # fmt: skip
        super().__init__()
        self.weight = nn.Parameter(torch.randn(c_out, c_in) / lr_multiplier)
        self.bias = nn.Parameter(torch.full((c_out,), float(bias_init)))
        self.weight_gain = lr_multiplier / math.sqrt(c_in)
        self.bias_gain = lr_multiplier
        self.activation = activation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.linear(x, self.weight * self.weight_gain, self.bias * self.bias_gain)
        return F.leaky_relu(x, 0.2) * LRELU_GAIN if self.activation else x


class EqualConv2d(nn.Module):
    """A convolution with equalized learning rate, optionally down-sampling (FIR, then a
    stride-2 pick) after it."""

    def __init__(self, c_in: int, c_out: int, kernel: int, bias: bool = True,
                 activation: bool = True, down: bool = False,
                 clamp: float | None = None):  # fmt: skip
        super().__init__()
        self.weight = nn.Parameter(torch.randn(c_out, c_in, kernel, kernel))
        self.bias = nn.Parameter(torch.zeros(c_out)) if bias else None
        self.weight_gain = 1 / math.sqrt(c_in * kernel * kernel)
        self.activation, self.down, self.clamp = activation, down, clamp

    def forward(self, x: torch.Tensor, gain: float = 1.0) -> torch.Tensor:
        weight = self.weight * self.weight_gain
        padding = self.weight.shape[-1] // 2
        if self.down:  # blur first, so the stride-2 convolution does not alias
            x = F.conv2d(fir_filter(x, (padding + 1, padding + 1)), weight, stride=2)
        else:
            x = F.conv2d(x, weight, padding=padding)
        x = activate(x, self.bias, None, linear=not self.activation) * gain
        return x.clamp(-self.clamp * gain, self.clamp * gain) if self.clamp else x


def modulated_conv2d(x: torch.Tensor, weight: torch.Tensor, styles: torch.Tensor,
                     demodulate: bool = True) -> torch.Tensor:  # fmt: skip
    """Each sample's own kernel: the weight scaled per input channel by its style, and (when
    demodulating) rescaled to unit L2 norm per output channel; all samples at once as one
    grouped convolution (groups = batch)."""
    n, c_in, h, w = x.shape
    c_out, _, k, _ = weight.shape
    kernels = weight[None] * styles[:, None, :, None, None].to(weight.dtype)  # (N, O, I, k, k)
    if demodulate:
        kernels = kernels * (kernels.square().sum(dim=(2, 3, 4), keepdim=True) + 1e-8).rsqrt()
    out = F.conv2d(x.reshape(1, n * c_in, h, w), kernels.reshape(n * c_out, c_in, k, k),
                   padding=k // 2, groups=n)  # fmt: skip
    return out.reshape(n, c_out, *out.shape[2:])


class SynthesisLayer(nn.Module):
    """Modulated 3x3 convolution (after x2 up-sampling when `up`), noise, bias, lrelu."""

    def __init__(self, c_in: int, c_out: int, w_dim: int, resolution: int,
                 up: bool = False, clamp: float | None = None):  # fmt: skip
        super().__init__()
        self.affine = EqualLinear(w_dim, c_in, bias_init=1.0)
        self.weight = nn.Parameter(torch.randn(c_out, c_in, 3, 3))
        # shape (1,), not a scalar: DeepSpeed cannot broadcast 0-d parameters
        self.noise_strength = nn.Parameter(torch.zeros(1))
        self.bias = nn.Parameter(torch.zeros(c_out))
        self.register_buffer("noise_const", torch.randn(resolution, resolution))
        self.up, self.resolution, self.clamp = up, resolution, clamp

    def forward(self, x: torch.Tensor, w: torch.Tensor, noise_mode: str = "random"):
        if self.up:
            x = upsample(x)
        x = modulated_conv2d(x, self.weight, self.affine(w))
        if noise_mode == "random":
            noise = torch.randn(len(x), 1, self.resolution, self.resolution, device=x.device)
            x = x + noise.to(x.dtype) * self.noise_strength.to(x.dtype)
        elif noise_mode == "const":
            x = x + self.noise_const.to(x.dtype) * self.noise_strength.to(x.dtype)
        return activate(x, self.bias, self.clamp)


class ToRGB(nn.Module):
    """1x1 modulated convolution to the image's channels, not demodulated."""

    def __init__(self, c_in: int, channels: int, w_dim: int, clamp: float | None = None):
        super().__init__()
        self.affine = EqualLinear(w_dim, c_in, bias_init=1.0)
        self.weight = nn.Parameter(torch.randn(channels, c_in, 1, 1))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.weight_gain, self.clamp = 1 / math.sqrt(c_in), clamp

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        styles = self.affine(w) * self.weight_gain
        return activate(modulated_conv2d(x, self.weight, styles, False), self.bias,
                        self.clamp, linear=True)  # fmt: skip


class SynthesisBlock(nn.Module):
    """One resolution: the constant (first block) or an up-sampling layer, a second layer,
    and its toRGB, whose image is added to the up-sampled image of the blocks before."""

    def __init__(self, c_in: int, c_out: int, w_dim: int, resolution: int, channels: int,
                 clamp: float | None):  # fmt: skip
        super().__init__()
        if c_in == 0:
            self.const = nn.Parameter(torch.randn(c_out, resolution, resolution))
        else:
            self.conv0 = SynthesisLayer(c_in, c_out, w_dim, resolution, up=True, clamp=clamp)
        self.conv1 = SynthesisLayer(c_out, c_out, w_dim, resolution, clamp=clamp)
        self.torgb = ToRGB(c_out, channels, w_dim, clamp)
        self.num_conv = 1 if c_in == 0 else 2

    def forward(self, x, image, ws: torch.Tensor, noise_mode: str = "random"):
        """`ws`: (N, num_conv + 1, w_dim), the last one the toRGB's (the next block's first)."""
        if x is None:
            x = self.const[None].expand(len(ws), -1, -1, -1)
        else:
            x = self.conv0(x, ws[:, 0], noise_mode)
        x = self.conv1(x, ws[:, self.num_conv - 1], noise_mode)
        rgb = self.torgb(x, ws[:, self.num_conv])
        return x, rgb if image is None else upsample(image) + rgb


def channels_at(resolution: int, base: int, most: int) -> int:
    return min(base // resolution, most)


def fp32_if(full_precision: bool, device_type: str):
    """Autocast off for a part that must run in fp32; otherwise the caller's setting."""
    if full_precision:
        return torch.autocast(device_type, enabled=False)
    return contextlib.nullcontext()


def as_fp32(x: torch.Tensor | None) -> torch.Tensor | None:
    """bf16 and fp16 to fp32; fp32 and fp64 as they are."""
    return None if x is None else x.to(torch.promote_types(x.dtype, torch.float32))


def fp32_blocks(blocks: nn.ModuleList, bf16_resolutions: int, lowest_first: bool) -> list[bool]:
    """Per block, whether it stays in fp32: all but the `bf16_resolutions` highest."""
    high = [i >= len(blocks) - bf16_resolutions for i in range(len(blocks))]
    return [not h for h in (high if lowest_first else high[::-1])]


def normalize_2nd_moment(x: torch.Tensor) -> torch.Tensor:
    return x * (x.square().mean(dim=1, keepdim=True) + 1e-8).rsqrt()


class MappingNetwork(nn.Module):
    """z (and a class embedding) -> w, `num_layers` lrelu layers at lr x0.01; tracks the mean
    of w while training, for truncation."""

    def __init__(self, z_dim: int, n_classes: int, w_dim: int, num_layers: int,
                 lr_multiplier: float = 0.01, w_avg_beta: float | None = 0.995):  # fmt: skip
        super().__init__()
        self.embed = EqualLinear(n_classes, w_dim) if n_classes else None
        widths = [z_dim + (w_dim if n_classes else 0)] + [w_dim] * num_layers
        self.layers = nn.Sequential(*(
            EqualLinear(a, b, activation=True, lr_multiplier=lr_multiplier)
            for a, b in zip(widths[:-1], widths[1:], strict=True)
        ))  # fmt: skip
        self.n_classes, self.w_avg_beta = n_classes, w_avg_beta
        if w_avg_beta is not None:
            self.register_buffer("w_avg", torch.zeros(w_dim))

    def forward(self, z: torch.Tensor | None, y: torch.Tensor | None,
                track: bool = True) -> torch.Tensor:  # fmt: skip
        """`track`: update the mean of w (while training; not for style mixing's extra w)."""
        device = (z if z is not None else y).device.type
        with fp32_if(True, device):  # z's normalisation and lr x0.01 layers: fp32 always
            parts = [] if z is None else [normalize_2nd_moment(as_fp32(z))]
            if self.embed is not None:
                onehot = F.one_hot(y.long(), self.n_classes).to(self.embed.weight.dtype)
                parts.append(normalize_2nd_moment(self.embed(onehot)))
            w = self.layers(torch.cat(parts, dim=1))
        if track and self.training and self.w_avg_beta is not None:
            self.w_avg.copy_(w.detach().float().mean(0).lerp(self.w_avg, self.w_avg_beta))
        return w


class Generator(nn.Module):
    """StyleGAN2's generator: `G(z, y)` -> images in about [-1, 1]."""

    def __init__(self, shape, z_dim: int = 512, n_classes: int = 0, w_dim: int = 512,
                 mapping_layers: int = 8, channel_base: int = 32768, channel_max: int = 512,
                 conv_clamp: float | None = None, style_mixing: float = 0.9,
                 bf16_resolutions: int = 4):  # fmt: skip
        super().__init__()
        channels, resolution = shape[0], shape[-1]
        self.z_dim, self.n_classes = z_dim, n_classes
        self.blocks = nn.ModuleList()
        side = 4
        while side <= resolution:
            c_in = channels_at(side // 2, channel_base, channel_max) if side > 4 else 0
            c_out = channels_at(side, channel_base, channel_max)
            self.blocks.append(SynthesisBlock(c_in, c_out, w_dim, side, channels, conv_clamp))
            side *= 2
        self.fp32 = fp32_blocks(self.blocks, bf16_resolutions, lowest_first=True)
        self.num_ws = sum(block.num_conv for block in self.blocks) + 1
        self.mapping = MappingNetwork(z_dim, n_classes, w_dim, mapping_layers)
        self.style_mixing = style_mixing
        self.truncation = 1.0  # psi: 1 = off, 0 = the mean w for every sample

    def ws(self, z: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        """(N, num_ws, w_dim): the same w for every layer, pulled towards the tracked mean
        by the truncation; while training, from a random layer on, another z's w (style
        mixing, with probability `style_mixing`)."""
        w = self.mapping(z, y)
        ws = w[:, None].expand(-1, self.num_ws, -1)
        if self.training and self.style_mixing > 0 and torch.rand([]) < self.style_mixing:
            cutoff = int(torch.randint(1, self.num_ws, []))
            other = self.mapping(torch.randn_like(z), y, track=False)
            ws = torch.cat([ws[:, :cutoff], other[:, None].expand(-1, self.num_ws - cutoff, -1)], 1)
        if self.truncation != 1.0:
            ws = self.mapping.w_avg.to(ws.dtype).lerp(ws, self.truncation)
        return ws

    def synthesis(self, ws: torch.Tensor, noise_mode: str = "random") -> torch.Tensor:
        x = image = None
        first = 0
        for block, fp32 in zip(self.blocks, self.fp32, strict=True):
            block_ws = ws[:, first : first + block.num_conv + 1]
            with fp32_if(fp32, ws.device.type):
                if fp32:
                    x, image, block_ws = as_fp32(x), as_fp32(image), as_fp32(block_ws)
                x, image = block(x, image, block_ws, noise_mode)
            first += block.num_conv
        return image

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """Fresh noise while training; outside it, each layer's fixed noise, so samples are a
        function of z alone (as seeded evaluations and exports need)."""
        return self.synthesis(self.ws(z, y), "random" if self.training else "const")


class DiscriminatorBlock(nn.Module):
    """One resolution down: fromRGB (first block, or every block of the `skip` design), two
    3x3 convolutions, the second down-sampling; `resnet` adds a 1x1 down-sampled shortcut and
    scales both paths by sqrt(1/2)."""

    def __init__(self, c_in: int, c_tmp: int, c_out: int, channels: int,
                 architecture: str, clamp: float | None):  # fmt: skip
        super().__init__()
        self.fromrgb = EqualConv2d(channels, c_tmp, 1, clamp=clamp) if c_in == 0 else None
        self.conv0 = EqualConv2d(c_tmp, c_tmp, 3, clamp=clamp)
        self.conv1 = EqualConv2d(c_tmp, c_out, 3, down=True, clamp=clamp)
        self.skip = None
        if architecture == "resnet":
            self.skip = EqualConv2d(c_tmp, c_out, 1, bias=False, activation=False, down=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.fromrgb is not None:
            x = self.fromrgb(x)
        if self.skip is None:
            return self.conv1(self.conv0(x))
        half = math.sqrt(0.5)
        return self.skip(x, gain=half) + self.conv1(self.conv0(x), gain=half)


class Discriminator(nn.Module):
    """StyleGAN2's discriminator: `D(x, y)` -> (N,) scores."""

    def __init__(self, shape, n_classes: int = 0, architecture: str = "resnet",
                 channel_base: int = 32768, channel_max: int = 512, mbstd_group: int = 4,
                 conv_clamp: float | None = None, bf16_resolutions: int = 4):  # fmt: skip
        """`mbstd_group`: samples per minibatch-stddev group; 0 leaves the feature out."""
        super().__init__()
        channels, resolution = shape[0], shape[-1]
        self.n_classes, self.mbstd_group = n_classes, mbstd_group
        self.blocks = nn.ModuleList()
        side = resolution
        while side > 4:
            c_tmp = channels_at(side, channel_base, channel_max)
            c_in = c_tmp if side < resolution else 0
            c_out = channels_at(side // 2, channel_base, channel_max)
            self.blocks.append(
                DiscriminatorBlock(c_in, c_tmp, c_out, channels, architecture, conv_clamp)
            )
            side //= 2
        self.fp32 = fp32_blocks(self.blocks, bf16_resolutions, lowest_first=False)
        c4 = channels_at(4, channel_base, channel_max)
        self.cmap_dim = c4 if n_classes else 0
        self.mapping = (
            MappingNetwork(0, n_classes, c4, 8, lr_multiplier=0.01, w_avg_beta=None)
            if n_classes else None
        )  # fmt: skip
        self.conv = EqualConv2d(c4 + (1 if mbstd_group else 0), c4, 3, clamp=conv_clamp)
        self.fc = EqualLinear(c4 * 16, c4, activation=True)
        self.out = EqualLinear(c4, self.cmap_dim or 1)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        device = x.device.type
        for block, fp32 in zip(self.blocks, self.fp32, strict=True):
            with fp32_if(fp32, device):
                x = block(as_fp32(x) if fp32 else x)
        with fp32_if(True, device):  # the 4x4 epilogue
            x = as_fp32(x)
            if self.mbstd_group:
                x = minibatch_stddev(x, self.mbstd_group)
            x = self.conv(x)
            return self.fc(x.flatten(1))

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        features = self.features(x)
        with fp32_if(True, x.device.type):
            out = self.out(features)
            if self.mapping is None:
                return out.squeeze(1)
            cmap = self.mapping(None, y)
            return (out * cmap).sum(dim=1) / math.sqrt(self.cmap_dim)
