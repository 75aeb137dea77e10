"""Seed 004's networks (SPG-VTON, Hu et al., IEEE TMM 2022, Table I; FAMILIES.md §3.2).

**Generator** (G1, G2 and G3 share it; 3x3 stride-1 convolutions unless noted, instance norm
without affine parameters after every convolution but the last three, ReLU in G)::

    Conv1 in->64, Conv2 64->128, Conv3 128->128 /2, ResBlock(128), Conv4 128->256 /2, ResBlock(256),
    Conv5 256->512 /2, 4 x ResBlock(512), [nearest x2, Conv6 512->256], [x2, Conv7 256->128],
    [x2, Conv8 128->64], Conv9 64->out + ReLU, Conv10 out->out + Tanh, Conv11 out->out 1x1

A ResBlock is conv-IN-ReLU-conv-IN plus the input, then ReLU. The table's ending (ReLU, Tanh, then a
1x1 conv with no activation) is kept verbatim (``head="strict"``; ``"plain"`` drops the two
activations, same parameters); the recipes activate Conv11's output (softmax for a parse, tanh and
sigmoid for image and mask). ``ngf`` scales the widths (Table I: 64) and ``ndf`` the
discriminator's (32), for small test runs. With conv biases: G1 (41 -> 20) 23,638,556 parameters, G2 (44 -> 4)
23,627,180, G3 (24 -> 4) 23,615,660. The table's "128x92" for Conv7 is 128x96 (a typo).

**Discriminator**, per scale: Conv1 in->32 (3x3: the table's "3x1, 1, 0" contradicts its own
output size), Conv2 32->32, Conv3 32->32 /2, Conv4 32->32 (the table says /2 but keeps 128x96),
Conv5 32->64 /2, Conv6 64->1 1x1; LeakyReLU(0.2), IN after Conv2-5. Two scales (pix2pixHD's
default; the paper gives no number), a 3x3 average pool between them: D1 (61 channels) 127,810,
D2 (47) 119,746, Dg (27) 108,226, Dl (30) 109,954. These are tiny, as the table says.

**CWM**: two CP-VTON GMMs on one-channel inputs (a mask against a mask), 19,034,098 each.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vton_models.networks.gmm import GMM

HEADS = ("strict", "plain")


def _conv(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, stride, 1)


class ResBlock(nn.Module):
    """conv-IN-ReLU-conv-IN plus the input, then ReLU (Table I's residual block)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(_conv(channels, channels), nn.InstanceNorm2d(channels), nn.ReLU(),
                                  _conv(channels, channels), nn.InstanceNorm2d(channels))

    def forward(self, x: Tensor) -> Tensor:
        return torch.relu(x + self.body(x))


class SPGGenerator(nn.Module):
    """(B, in, H, W) -> (B, out, H, W), Conv11's raw output; H and W divisible by 8."""

    def __init__(self, input_channels: int, output_channels: int, head: str = "strict", ngf: int = 64) -> None:
        super().__init__()
        if head not in HEADS:
            raise ValueError(f"SPGGenerator: head {head!r} is not one of {list(HEADS)}")
        self.input_channels = input_channels

        def block(cin: int, cout: int, stride: int = 1) -> list[nn.Module]:
            return [_conv(cin, cout, stride), nn.InstanceNorm2d(cout), nn.ReLU()]

        def up(cin: int, cout: int) -> list[nn.Module]:
            return [nn.Upsample(scale_factor=2, mode="nearest"), *block(cin, cout)]

        strict = head == "strict"
        w1, w2, w4, w8 = ngf, 2 * ngf, 4 * ngf, 8 * ngf  # Table I: 64, 128, 256, 512
        self.model = nn.Sequential(
            *block(input_channels, w1), *block(w1, w2), *block(w2, w2, 2), ResBlock(w2),
            *block(w2, w4, 2), ResBlock(w4), *block(w4, w8, 2), *(ResBlock(w8) for _ in range(4)),
            *up(w8, w4), *up(w4, w2), *up(w2, w1),
            _conv(w1, output_channels), nn.ReLU() if strict else nn.Identity(),
            _conv(output_channels, output_channels), nn.Tanh() if strict else nn.Identity(),
            nn.Conv2d(output_channels, output_channels, 1))

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() != 4 or x.shape[1] != self.input_channels or x.shape[2] % 8 or x.shape[3] % 8:
            raise ValueError(f"SPGGenerator expects (B, {self.input_channels}, H, W) with H and W divisible by 8, "
                             f"got {tuple(x.shape)}")
        return self.model(x)


class _Scale(nn.Module):
    def __init__(self, input_channels: int, ndf: int = 32) -> None:
        super().__init__()

        def block(cin: int, cout: int, stride: int = 1, norm: bool = True) -> nn.Sequential:
            layers: list[nn.Module] = [_conv(cin, cout, stride)]
            if norm:
                layers.append(nn.InstanceNorm2d(cout))
            return nn.Sequential(*layers, nn.LeakyReLU(0.2))

        self.blocks = nn.ModuleList([block(input_channels, ndf, norm=False), block(ndf, ndf), block(ndf, ndf, 2),
                                     block(ndf, ndf), block(ndf, 2 * ndf, 2)])
        self.classifier = nn.Conv2d(2 * ndf, 1, 1)

    def forward(self, x: Tensor, return_features: bool = False):
        features = []
        for blk in self.blocks:
            x = blk(x)
            features.append(x)
        out = self.classifier(x)
        return (out, features) if return_features else out


class SPGDiscriminator(nn.Module):
    """Table I's discriminator at ``num_scales`` scales (each input halved by a 3x3 average pool):
    a list of patch score maps, finest first (``return_features``: also each scale's activations)."""

    def __init__(self, input_channels: int, num_scales: int = 2, ndf: int = 32) -> None:
        super().__init__()
        if num_scales < 1:
            raise ValueError(f"SPGDiscriminator: num_scales must be >= 1, got {num_scales}")
        self.input_channels = input_channels
        self.scales = nn.ModuleList(_Scale(input_channels, ndf) for _ in range(num_scales))

    def forward(self, x: Tensor, return_features: bool = False):
        if x.dim() != 4 or x.shape[1] != self.input_channels:
            raise ValueError(f"SPGDiscriminator expects (B, {self.input_channels}, H, W), got {tuple(x.shape)}")
        outputs, features = [], []
        for i, scale in enumerate(self.scales):
            if i:
                x = F.avg_pool2d(x, 3, stride=2, padding=1, count_include_pad=False)
            out = scale(x, return_features)
            if return_features:
                outputs.append(out[0])
                features.extend(out[1])
            else:
                outputs.append(out)
        return (outputs, features) if return_features else outputs


def cwm_gmm(image_size: tuple[int, int], grid_size: int = 5, ngf: int = 64) -> GMM:
    """One of the CWM's two GMMs: a one-channel mask warped towards a one-channel mask."""
    return GMM(1, 1, image_size, image_size, grid_size, ngf, tps_extent=1.0)
