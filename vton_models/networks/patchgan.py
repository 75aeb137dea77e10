"""70x70 PatchGAN discriminator with spectral norm (pix2pix's NLayerDiscriminator, n_layers=3).

Layout (seed-000 paper, Table 4)::

    6-ch [image; condition] -> Conv4x4 s2 (ndf), LeakyReLU               no spectral norm
      -> SN Conv4x4 s2 (2 ndf), IN, LeakyReLU -> SN Conv4x4 s2 (4 ndf), IN, LeakyReLU
      -> SN Conv4x4 s1 (8 ndf), IN, LeakyReLU
      -> Conv4x4 s1 (1)                                                 no spectral norm

The paper puts spectral norm on every layer but the first and the last. It names no other
normalisation; we add instance norm after the spectrally normalised convolutions as SPADE's
``spectralinstance`` discriminator and the paper author's notebook do, and drop those layers' biases
(the norm cancels them). At ndf=64 this has 2,766,913 parameters, which is what the author's
notebook prints; the paper's text says 2,768,065 (1,152 more). No conventional variant gives the
paper's figure: keeping the three redundant biases gives 2,767,809, still 256 short.

``forward(x, return_features=True)`` also returns the activations of the four hidden layers,
which the feature-matching loss compares between real and generated inputs (pix2pixHD).
"""

from __future__ import annotations

import torch
from torch import nn

from vton_models.layers.norm import spectral_norm


class PatchGANDiscriminator(nn.Module):
    """Scores each ~70x70 patch of ``x`` = ``[image; condition]``; higher means "real"."""

    def __init__(
        self,
        input_channels: int = 6,
        ndf: int = 64,
        n_layers: int = 3,
        max_multiplier: int = 8,
        use_spectral_norm: bool = True,
    ) -> None:
        super().__init__()
        for name, value in (("input_channels", input_channels), ("ndf", ndf), ("n_layers", n_layers),
                            ("max_multiplier", max_multiplier)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
        self.input_channels = input_channels

        def hidden(in_ch: int, out_ch: int, stride: int) -> nn.Sequential:
            conv = nn.Conv2d(in_ch, out_ch, 4, stride=stride, padding=1, bias=False)
            return nn.Sequential(
                spectral_norm(conv, use_spectral_norm),
                nn.InstanceNorm2d(out_ch),
                nn.LeakyReLU(0.2, inplace=True),
            )

        blocks: list[nn.Module] = [
            nn.Sequential(
                nn.Conv2d(input_channels, ndf, 4, stride=2, padding=1),
                nn.LeakyReLU(0.2, inplace=True),
            )
        ]
        width = ndf
        for i in range(1, n_layers + 1):
            out = ndf * min(2**i, max_multiplier)
            # The last hidden layer keeps the resolution (stride 1), giving the 70x70 field.
            blocks.append(hidden(width, out, stride=2 if i < n_layers else 1))
            width = out
        self.blocks = nn.ModuleList(blocks)
        self.classifier = nn.Conv2d(width, 1, 4, stride=1, padding=1)

    def forward(
        self, x: torch.Tensor, return_features: bool = False
    ) -> torch.Tensor | tuple[torch.Tensor, list[torch.Tensor]]:
        if x.dim() != 4 or x.shape[1] != self.input_channels:
            raise ValueError(
                f"PatchGANDiscriminator expects (B, {self.input_channels}, H, W) input "
                f"([image; condition]), got {tuple(x.shape)}"
            )
        features: list[torch.Tensor] = []
        h = x
        for block in self.blocks:
            h = block(h)
            features.append(h)
        prediction = self.classifier(h)
        return (prediction, features) if return_features else prediction
