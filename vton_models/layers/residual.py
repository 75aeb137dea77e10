"""The pix2pixHD / CycleGAN residual block: ``x + IN(Conv(ReLU(IN(Conv(x)))))``."""

from __future__ import annotations

import torch
from torch import nn


class ResnetBlock(nn.Module):
    """Two 3x3 convolutions with instance norm and an identity shortcut.

    Reflection padding avoids the dark borders zero padding leaves in synthesised images. The
    convolutions carry no bias because the instance norm right after each one subtracts the
    per-channel mean, which would cancel any bias exactly (dead parameters).
    """

    def __init__(self, channels: int, dropout: float = 0.0) -> None:
        super().__init__()
        if channels <= 0:
            raise ValueError(f"ResnetBlock: channels must be positive, got {channels}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"ResnetBlock: dropout must be in [0, 1), got {dropout}")
        layers: list[nn.Module] = [
            nn.Conv2d(channels, channels, 3, padding=1, padding_mode="reflect", bias=False),
            nn.InstanceNorm2d(channels),
            nn.ReLU(inplace=True),
        ]
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        layers += [
            nn.Conv2d(channels, channels, 3, padding=1, padding_mode="reflect", bias=False),
            nn.InstanceNorm2d(channels),
        ]
        self.block = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.block(x)
