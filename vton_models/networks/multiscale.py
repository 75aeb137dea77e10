"""Multi-scale PatchGAN discriminator (pix2pixHD / SPADE), as used by the VITON-HD dissertation.

``num_D`` copies of an ``n_layers`` PatchGAN see the input at full, 1/2, 1/4 ... resolution
(3x3 average pooling, stride 2, between scales), so the coarse copies judge global structure and
the fine copy texture. Each conv but the first and the last is spectral-normalised and followed by
InstanceNorm (SPADE's ``spectralinstance``); Dropout (0.2 in the dissertation) follows each hidden
LeakyReLU. ``forward(x, return_features=True)`` also returns every scale's hidden activations,
which the feature-matching loss compares between real and fake.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from vton_models.layers.norm import spectral_norm

Tensor = torch.Tensor


class NLayerDiscriminator(nn.Module):
    """One scale: conv4x4/2 -> (n_layers - 1) x [conv4x4/2, SN, IN] -> conv4x4/1 [SN, IN] -> conv4x4/1 to 1."""

    def __init__(self, input_channels: int, ndf: int = 64, n_layers: int = 4, dropout: float = 0.0,
                 spectral: bool = True) -> None:
        super().__init__()
        def act() -> list[nn.Module]:
            return [nn.LeakyReLU(0.2)] + ([nn.Dropout(dropout)] if dropout > 0 else [])

        blocks: list[nn.Sequential] = [nn.Sequential(nn.Conv2d(input_channels, ndf, 4, 2, 2), *act())]
        nf = ndf
        for n in range(1, n_layers):
            prev, nf = nf, min(nf * 2, 512)
            stride = 1 if n == n_layers - 1 else 2
            blocks.append(nn.Sequential(spectral_norm(nn.Conv2d(prev, nf, 4, stride, 2), spectral),
                                        nn.InstanceNorm2d(nf), *act()))
        blocks.append(nn.Sequential(nn.Conv2d(nf, 1, 4, 1, 2)))
        self.blocks = nn.ModuleList(blocks)

    def forward(self, x: Tensor) -> list[Tensor]:
        feats = []
        for block in self.blocks:
            x = block(x)
            feats.append(x)
        return feats  # last entry is the patch score map


class MultiscaleDiscriminator(nn.Module):
    """``num_D`` NLayerDiscriminators on an image pyramid; returns one score map per scale."""

    def __init__(self, input_channels: int, ndf: int = 64, n_layers: int = 4, num_D: int = 2,
                 dropout: float = 0.2, spectral: bool = True) -> None:
        super().__init__()
        if num_D < 1 or n_layers < 1:
            raise ValueError(f"MultiscaleDiscriminator: num_D and n_layers must be >= 1, got {num_D}, {n_layers}")
        if not 0 <= dropout < 1:
            raise ValueError(f"MultiscaleDiscriminator: dropout must be in [0, 1), got {dropout}")
        self.input_channels = input_channels
        self.scales = nn.ModuleList(NLayerDiscriminator(input_channels, ndf, n_layers, dropout, spectral)
                                    for _ in range(num_D))

    def forward(self, x: Tensor, return_features: bool = False) -> list[Tensor] | tuple[list[Tensor], list[list[Tensor]]]:
        scores, features = [], []
        for i, scale in enumerate(self.scales):
            if i:
                x = F.avg_pool2d(x, 3, stride=2, padding=1, count_include_pad=False)
            feats = scale(x)
            scores.append(feats[-1])
            features.append(feats[:-1])
        return (scores, features) if return_features else scores
