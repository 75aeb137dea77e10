"""VITON-HD segmentation generator: a 5-level U-Net predicting the 13-class parse of the try-on.

Input (21 channels at 256x192 in the official pipeline): cloth mask (1), masked cloth (3),
13-class parse-agnostic map (13), rendered pose (3) and one channel of uniform noise. Output: per-class
sigmoid scores (official) or their logits (what a cross-entropy loss wants: ``return_logits=True``).

Layer layout and names (``conv1.0``, ``up6.1``, ``conv9.6`` ...) follow the official network so that
``seg_final.pth`` loads with an identity key mapping: double 3x3 conv + InstanceNorm (no affine)
+ ReLU per level, max-pool down, nearest-upsample + conv up, dropout 0.5 on the two deepest levels.
"""

from __future__ import annotations

import torch
from torch import nn

Tensor = torch.Tensor


def _double_conv(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.InstanceNorm2d(cout), nn.ReLU(),
                         nn.Conv2d(cout, cout, 3, padding=1), nn.InstanceNorm2d(cout), nn.ReLU())


def _up(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(cin, cout, 3, padding=1),
                         nn.InstanceNorm2d(cout), nn.ReLU())


class SegGenerator(nn.Module):
    """U-Net ``input_channels -> output_channels``; widths ``ngf * (1, 2, 4, 8, 16)``.

    Height and width must be divisible by 16 (four max-pools). Official: ngf 64, 21 -> 13 channels,
    34,531,149 parameters.
    """

    def __init__(self, input_channels: int = 21, output_channels: int = 13, ngf: int = 64, dropout: float = 0.5) -> None:
        super().__init__()
        self.input_channels, self.output_channels = input_channels, output_channels
        w = [ngf, ngf * 2, ngf * 4, ngf * 8, ngf * 16]
        self.conv1 = _double_conv(input_channels, w[0])
        self.conv2 = _double_conv(w[0], w[1])
        self.conv3 = _double_conv(w[1], w[2])
        self.conv4 = _double_conv(w[2], w[3])
        self.conv5 = _double_conv(w[3], w[4])
        self.up6, self.conv6 = _up(w[4], w[3]), _double_conv(w[4], w[3])
        self.up7, self.conv7 = _up(w[3], w[2]), _double_conv(w[3], w[2])
        self.up8, self.conv8 = _up(w[2], w[1]), _double_conv(w[2], w[1])
        self.up9 = _up(w[1], w[0])
        self.conv9 = nn.Sequential(*_double_conv(w[1], w[0]), nn.Conv2d(w[0], output_channels, 3, padding=1))
        self.pool = nn.MaxPool2d(2)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: Tensor, return_logits: bool = False) -> Tensor:
        if x.dim() != 4 or x.shape[1] != self.input_channels:
            raise ValueError(f"SegGenerator: expected (B, {self.input_channels}, H, W), got {tuple(x.shape)}")
        if x.shape[2] % 16 or x.shape[3] % 16:
            raise ValueError(f"SegGenerator: height and width must be divisible by 16, got {tuple(x.shape[2:])}")
        c1 = self.conv1(x)
        c2 = self.conv2(self.pool(c1))
        c3 = self.conv3(self.pool(c2))
        c4 = self.drop(self.conv4(self.pool(c3)))
        c5 = self.drop(self.conv5(self.pool(c4)))
        c6 = self.conv6(torch.cat([c4, self.up6(c5)], 1))
        c7 = self.conv7(torch.cat([c3, self.up7(c6)], 1))
        c8 = self.conv8(torch.cat([c2, self.up8(c7)], 1))
        logits = self.conv9(torch.cat([c1, self.up9(c8)], 1))
        return logits if return_logits else torch.sigmoid(logits)
