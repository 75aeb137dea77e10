"""Seed 003's networks: CP-VTON's GMM with an auxiliary segmentation head on its two extractors'
features (``GMMAux``), and CP-VTON's try-on module (TOM) as an explicit U-Net encoder and decoder
plus the auxiliary segmentation decoder that shares the encoder (``TOMGenerator``).

CP-VTON builds ``UnetGenerator(25, 4, num_downs=6, ngf=64, norm_layer=InstanceNorm2d)`` from nested
skip blocks; the same layers are written out here so that a second decoder can read the encoder's
features (the paper: "pass the features from the encoder through another decoder"). What the
nesting does implicitly is kept exactly:

- every down step but the first is LeakyReLU(0.2) -> conv 4x4/2 (bias, since the norm is instance
  norm) -> IN (none at the innermost); every up step is ReLU -> bilinear x2 -> conv 3x3 -> IN,
  including the outermost, so the 4 output channels pass through IN before ``tanh`` / ``sigmoid``;
- the LeakyReLU is applied *in place* to each block's input in CP-VTON, so the skip a decoder level
  concatenates is LeakyReLU(encoder feature), not the feature itself.

With CP-VTON's weights (``official_tom_keys`` maps its state-dict names to ours) the main output
equals CP-VTON's network (tests/test_cpvton_aux_networks.py).

The auxiliary decoder is a choice (the paper gives no design): the main decoder's shape, encoder
skips included (a Y-Net; ``aux_skips=False`` drops them), ending in a 3x3 conv to ``aux_classes``
logits with no norm. 21,349,252 parameters for TOM, 10,198,996 for the decoder with 20 classes.
The GMM is the project's (``vton_models/networks/gmm.py``, 19,057,650 parameters with 22 input
channels at 256x192); its head adds 2,752,628 (20 classes) or 2,748,871 (7).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vton_models.networks.gmm import GMM

TOM_INPUT_CHANNELS = 25  # cpvton agnostic (22) + warped cloth (3)
TOM_OUTPUT_CHANNELS = 4  # rendered person (3) + composition mask (1)
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


class TOMGenerator(nn.Module):
    """``x`` (B, 25, H, W) -> ``(out (B, 4, H, W), aux logits or None)``; H and W divisible by 64."""

    def __init__(self, input_channels: int = TOM_INPUT_CHANNELS, output_channels: int = TOM_OUTPUT_CHANNELS,
                 ngf: int = 64, aux_classes: int = 0, aux_skips: bool = True) -> None:
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
            raise ValueError(f"TOMGenerator expects (B, {self.input_channels}, H, W) with H and W divisible by "
                             f"{2 ** NUM_DOWNS}, got {tuple(x.shape)}")
        bottleneck, skips = self.encode(x)
        out = self.decoder(bottleneck, skips)
        aux = self.aux_decoder(bottleneck, skips) if self.aux_decoder is not None else None
        return out, aux


def official_tom_keys() -> dict[str, str]:
    """CP-VTON ``UnetGenerator(25, 4, 6)`` state-dict names -> ``TOMGenerator`` names (convs only:
    instance norm without affine parameters has none)."""
    mapping = {}
    prefix = "model.model."
    for depth in range(NUM_DOWNS):
        if depth == 0:
            down, up = "0", "4"  # outermost block: [downconv, submodule, relu, upsample, upconv, norm]
        elif depth == NUM_DOWNS - 1:
            down, up = "1", "4"  # innermost: [lrelu, downconv, relu, upsample, upconv, norm]
        else:
            down, up = "1", "6"  # [lrelu, downconv, norm, submodule, relu, upsample, upconv, norm]
        ours_down = f"downs.{depth}" if depth == 0 else f"downs.{depth}.0"
        ours_up = f"decoder.ups.{NUM_DOWNS - 1 - depth}.2"
        for param in ("weight", "bias"):
            mapping[f"{prefix}{down}.{param}"] = f"{ours_down}.{param}"
            mapping[f"{prefix}{up}.{param}"] = f"{ours_up}.{param}"
        prefix += "1.model." if depth == 0 else "3.model."
    return mapping


class GMMAuxDecoder(nn.Sequential):
    """The GMM's auxiliary head (a choice; the paper says only "a decoder on the concatenated
    features"): 4 x [bilinear x2, conv 3x3, IN, ReLU] (256, 128, 64, 32) then a 3x3 conv to logits.
    From the 1/16 feature map back to the input size."""

    def __init__(self, in_channels: int, classes: int, widths: tuple[int, ...] = (256, 128, 64, 32)) -> None:
        layers: list[nn.Module] = []
        for width in widths:
            layers += [nn.Upsample(scale_factor=2, mode="bilinear"), nn.Conv2d(in_channels, width, 3, 1, 1),
                       nn.InstanceNorm2d(width), nn.ReLU()]
            in_channels = width
        layers.append(nn.Conv2d(in_channels, classes, 3, 1, 1))
        super().__init__(*layers)


class GMMAux(GMM):
    """CP-VTON's GMM (22-channel person representation, 3-channel cloth) plus the auxiliary head on
    both extractors' raw features: ``(a, b) -> (theta, grid, aux logits or None)``."""

    def __init__(self, input_size: tuple[int, int] = (256, 192), grid_size: int = 5, ngf: int = 64,
                 aux_classes: int = 0) -> None:
        super().__init__(22, 3, input_size, input_size, grid_size, ngf, tps_extent=1.0)
        width = self.extractionA.model[-2].out_channels + self.extractionB.model[-2].out_channels
        self.aux_decoder = GMMAuxDecoder(width, aux_classes) if aux_classes else None

    def forward(self, input_a: Tensor, input_b: Tensor,  # type: ignore[override]
                output_size: tuple[int, int] | None = None) -> tuple[Tensor, Tensor, Tensor | None]:
        fa, fb = self.features(input_a, input_b)
        theta, grid = self.warp_from(fa, fb, output_size)
        aux = self.aux_decoder(torch.cat([fa, fb], 1)) if self.aux_decoder is not None else None
        return theta, grid, aux
