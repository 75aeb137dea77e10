"""CP-VTON's U-Net generator (``UnetGenerator(in, out, num_downs=6, ngf=64, norm_layer=InstanceNorm2d)``)
written out as an explicit encoder and decoder, so that a second decoder can share the encoder.

Seed 003 uses it as CP-VTON's try-on module (with an auxiliary segmentation decoder), seed 002 as its
parse-transformation net. CP-VTON builds it from nested skip blocks; what the nesting does
implicitly is kept exactly:

- every down step but the first is LeakyReLU(0.2) -> conv 4x4/2 (bias, since the norm is instance
  norm) -> IN (none at the innermost); every up step is ReLU -> bilinear x2 -> conv 3x3 -> IN,
  including the outermost, so the output channels pass through IN before the caller's activation;
- the LeakyReLU is applied *in place* to each block's input in CP-VTON, so the skip a decoder level
  concatenates is LeakyReLU(encoder feature), not the feature itself.

With CP-VTON's weights (``vton_models.families.cpvton_aux.networks.official_tom_keys`` maps its
state-dict names to ours) the main output equals CP-VTON's network (tests/test_cpvton_aux_networks.py).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

NUM_DOWNS = 6


def _widths(ngf: int) -> list[int]:
    """Encoder output widths, outermost first: ngf, 2ngf, 4ngf, 8ngf, then 8ngf to the innermost."""
    return [ngf * min(2 ** i, 8) for i in range(NUM_DOWNS)]


class _Up(nn.Sequential):
    """ReLU -> bilinear x2 -> conv 3x3 (-> IN unless ``logits``)."""

    def __init__(self, in_channels: int, out_channels: int, logits: bool = False) -> None:
        layers: list[nn.Module] = [nn.ReLU(), nn.Upsample(scale_factor=2, mode="bilinear"),
                                   nn.Conv2d(in_channels, out_channels, 3, 1, 1)]
        if not logits:
            layers.append(nn.InstanceNorm2d(out_channels))
        super().__init__(*layers)


class UNetDecoder(nn.Module):
    """Innermost first: level k upsamples and, unless it is the last, concatenates the skip of
    encoder level ``NUM_DOWNS - 2 - k``."""

    def __init__(self, ngf: int, out_channels: int, skips: bool = True, logits: bool = False) -> None:
        super().__init__()
        widths = _widths(ngf)
        self.skips = skips
        ups = []
        for level in range(NUM_DOWNS):  # level 0 is innermost
            depth = NUM_DOWNS - 1 - level  # encoder index whose output this level receives
            in_ch = widths[depth] if level == 0 or not skips else 2 * widths[depth]
            out_ch = out_channels if depth == 0 else widths[depth - 1]
            ups.append(_Up(in_ch, out_ch, logits=logits and depth == 0))
        self.ups = nn.ModuleList(ups)

    def forward(self, bottleneck: Tensor, skips: list[Tensor]) -> Tensor:
        x = bottleneck
        for level, up in enumerate(self.ups):
            x = up(x)
            depth = NUM_DOWNS - 2 - level
            if depth >= 0 and self.skips:
                x = torch.cat([skips[depth], x], 1)
        return x


class CPVTONUNet(nn.Module):
    """``x`` (B, in, H, W) -> ``(out (B, out, H, W), aux logits or None)``; H and W divisible by 64."""

    def __init__(self, input_channels: int, output_channels: int, ngf: int = 64, aux_classes: int = 0,
                 aux_skips: bool = True) -> None:
        super().__init__()
        widths = _widths(ngf)
        self.input_channels = input_channels
        downs = [nn.Conv2d(input_channels, widths[0], 4, 2, 1)]
        for depth in range(1, NUM_DOWNS):
            layers: list[nn.Module] = [nn.Conv2d(widths[depth - 1], widths[depth], 4, 2, 1)]
            if depth < NUM_DOWNS - 1:
                layers.append(nn.InstanceNorm2d(widths[depth]))
            downs.append(nn.Sequential(*layers))
        self.downs = nn.ModuleList(downs)
        self.decoder = UNetDecoder(ngf, output_channels)
        self.aux_decoder = UNetDecoder(ngf, aux_classes, skips=aux_skips, logits=True) if aux_classes else None

    def encode(self, x: Tensor) -> tuple[Tensor, list[Tensor]]:
        """The innermost feature and the skips (LeakyReLU of each outer level's output)."""
        skips = []
        for depth, down in enumerate(self.downs):
            if depth > 0:
                x = F.leaky_relu(x, 0.2)
                skips.append(x)
            x = down(x)
        return x, skips

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor | None]:
        if x.dim() != 4 or x.shape[1] != self.input_channels or x.shape[2] % 64 or x.shape[3] % 64:
            raise ValueError(f"{type(self).__name__} expects (B, {self.input_channels}, H, W) with H and W divisible by "
                             f"{2 ** NUM_DOWNS}, got {tuple(x.shape)}")
        bottleneck, skips = self.encode(x)
        out = self.decoder(bottleneck, skips)
        aux = self.aux_decoder(bottleneck, skips) if self.aux_decoder is not None else None
        return out, aux
