"""Seed 003's networks: CP-VTON's GMM with an auxiliary segmentation head on its two extractors'
features (``GMMAux``), and CP-VTON's try-on module (TOM) as an explicit U-Net encoder and decoder
plus the auxiliary segmentation decoder that shares the encoder (``TOMGenerator``).

CP-VTON builds ``UnetGenerator(25, 4, num_downs=6, ngf=64, norm_layer=InstanceNorm2d)`` from nested
skip blocks; ``vton_models/networks/unet.py`` writes the same layers out (shared with seed 002's
parse net) so that a second decoder can read the encoder's features (the paper: "pass the features
from the encoder through another decoder"). The 4 output channels pass through IN before ``tanh``
/ ``sigmoid``, as in CP-VTON. With CP-VTON's weights (``official_tom_keys`` maps its state-dict names to ours) the main output
equals CP-VTON's network (tests/test_cpvton_aux_networks.py).

The auxiliary decoder is a choice (the paper gives no design): the main decoder's shape, encoder
skips included (a Y-Net; ``aux_skips=False`` drops them), ending in a 3x3 conv to ``aux_classes``
logits with no norm. 21,349,252 parameters for TOM, 10,198,996 for the decoder with 20 classes.
The GMM is the project's (``vton_models/networks/gmm.py``, 19,057,650 parameters with 22 input
channels at 256x192); its head adds 2,752,628 (20 classes) or 2,748,871 (7).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from vton_models.networks.gmm import GMM
from vton_models.networks.unet import NUM_DOWNS, CPVTONUNet

TOM_INPUT_CHANNELS = 25  # cpvton agnostic (22) + warped cloth (3)
TOM_OUTPUT_CHANNELS = 4  # rendered person (3) + composition mask (1)


class TOMGenerator(CPVTONUNet):
    """CP-VTON's TOM: ``x`` (B, 25, H, W) -> ``(out (B, 4, H, W), aux logits or None)``."""

    def __init__(self, input_channels: int = TOM_INPUT_CHANNELS, output_channels: int = TOM_OUTPUT_CHANNELS,
                 ngf: int = 64, aux_classes: int = 0, aux_skips: bool = True) -> None:
        super().__init__(input_channels, output_channels, ngf, aux_classes, aux_skips)


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
