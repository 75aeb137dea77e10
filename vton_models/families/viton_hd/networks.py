"""VITON-HD's own networks (seed 001): the segmentation generator and the ALIAS generator.

Both keep the official module names so the released ``seg_final.pth`` / ``alias_final.pth`` load with
an identity key mapping (``importer.py``). The GMM is shared with the CP-VTON families:
``vton_models.networks.gmm``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from vton_models.layers.alias import ALIASResBlock

Tensor = torch.Tensor


# SegGenerator
# VITON-HD segmentation generator: a 5-level U-Net predicting the 13-class parse of the try-on.
#
# Input (21 channels at 256x192 in the official pipeline): cloth mask (1), masked cloth (3),
# 13-class parse-agnostic map (13), rendered pose (3) and one channel of uniform noise. Output: per-class
# sigmoid scores (official) or their logits (what a cross-entropy loss wants: ``return_logits=True``).
#
# Layer layout and names (``conv1.0``, ``up6.1``, ``conv9.6`` ...) follow the official network so that
# ``seg_final.pth`` loads with an identity key mapping: double 3x3 conv + InstanceNorm (no affine)
# + ReLU per level, max-pool down, nearest-upsample + conv up, dropout 0.5 on the two deepest levels.


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


# ALIASGenerator
# VITON-HD ALIAS generator: try-on image from (agnostic image, pose, warped cloth) conditioned on the parse.
#
# Input ``x`` (9 channels): image-agnostic (3), rendered pose (3), warped cloth (3). Conditioning:
# ``seg`` is the 7-class parse; ``seg_div`` is that parse with the misalignment mask moved into an 8th
# channel (VITON-HD ``test.py``), and ``misalign_mask`` drives MaskNorm in the first (low-resolution)
# blocks. Like SPADE it starts from a tiny latent map and upsamples; at every block the input is
# resampled to that block's resolution, passed through its own 3x3 conv (16 channels) and concatenated,
# so fine detail of the warped cloth enters at every scale.
#
# ``num_upsampling_layers``: ``normal`` (5 upsamplings), ``more`` (6: one between the middle blocks),
# ``most`` (7: plus a final ``up_4`` block at half width; the official setting, 100,498,115 parameters at
# ngf 64). Unlike the official code, each block's size is derived from the output size (nearest
# upsampling to an explicit size, identical to scale-factor 2 when sizes divide), so ``normal`` works
# and small test resolutions need not be divisible by 2**7.
UPSAMPLING_MODES = {"normal": 5, "more": 6, "most": 7}


class ALIASGenerator(nn.Module):
    def __init__(self, input_channels: int = 9, semantic_channels: int = 7, ngf: int = 64,
                 num_upsampling_layers: str = "most", norm_hidden: int = 128, feature_channels: int = 16,
                 spectral: bool = True) -> None:
        super().__init__()
        if num_upsampling_layers not in UPSAMPLING_MODES:
            raise ValueError(f"ALIASGenerator: num_upsampling_layers {num_upsampling_layers!r} is not one of "
                             f"{sorted(UPSAMPLING_MODES)}")
        if ngf < 2:
            raise ValueError(f"ALIASGenerator: ngf must be >= 2, got {ngf}")
        self.x_channels, self.semantic_channels = input_channels, semantic_channels
        self.num_upsampling_layers = num_upsampling_layers
        self.num_up = UPSAMPLING_MODES[num_upsampling_layers]
        nf, fc = ngf, feature_channels

        def block(cin: int, cout: int, mask: bool) -> ALIASResBlock:
            return ALIASResBlock(cin, cout, semantic_channels, use_mask_norm=mask, spectral=spectral, hidden=norm_hidden)

        # (name, block, upsample before it, uses MaskNorm)
        plan: list[tuple[str, ALIASResBlock, bool]] = [
            ("head_0", block(nf * 16, nf * 16, True), False),
            ("G_middle_0", block(nf * 16 + fc, nf * 16, True), True),
            ("G_middle_1", block(nf * 16 + fc, nf * 16, True), num_upsampling_layers in ("more", "most")),
            ("up_0", block(nf * 16 + fc, nf * 8, True), True),
            ("up_1", block(nf * 8 + fc, nf * 4, True), True),
            ("up_2", block(nf * 4 + fc, nf * 2, False), True),
            ("up_3", block(nf * 2 + fc, nf, False), True),
        ]
        out_nf = nf
        if num_upsampling_layers == "most":
            plan.append(("up_4", block(nf + fc, nf // 2, False), True))
            out_nf = nf // 2
        # Per-block input convs (official ``conv_0``..``conv_7``); conv_0 makes the latent itself.
        self.conv_0 = nn.Conv2d(input_channels, nf * 16, 3, padding=1)
        for i in range(1, len(plan)):
            self.add_module(f"conv_{i}", nn.Conv2d(input_channels, fc, 3, padding=1))
        for name, module, _ in plan:
            self.add_module(name, module)
        self._plan = [(name, up) for name, _, up in plan]
        self.conv_img = nn.Conv2d(out_nf, 3, 3, padding=1)
        self.relu = nn.LeakyReLU(0.2)

    def _sizes(self, size: tuple[int, int]) -> list[tuple[int, int]]:
        """Resolution of each block: the output size halved once per upsampling still to come."""
        h, w = size
        return [(max(h // 2 ** (self.num_up - k), 1), max(w // 2 ** (self.num_up - k), 1))
                for k in self._levels()]

    def _levels(self) -> list[int]:
        levels, level = [], 0
        for _, up in self._plan:
            level += int(up)
            levels.append(level)
        return levels

    def forward(self, x: Tensor, seg: Tensor, seg_div: Tensor, misalign_mask: Tensor) -> Tensor:
        if x.dim() != 4 or x.shape[1] != self.x_channels:
            raise ValueError(f"ALIASGenerator: x must be (B, {self.x_channels}, H, W), got {tuple(x.shape)}")
        if seg.shape[1] != self.semantic_channels or seg_div.shape[1] != self.semantic_channels + 1:
            raise ValueError(f"ALIASGenerator: seg must have {self.semantic_channels} and seg_div "
                             f"{self.semantic_channels + 1} channels, got {seg.shape[1]} and {seg_div.shape[1]}")
        sizes = self._sizes(tuple(x.shape[2:]))
        out = None
        for i, ((name, _), size) in enumerate(zip(self._plan, sizes)):
            feature = self._modules[f"conv_{i}"](F.interpolate(x, size=size, mode="nearest"))
            block: ALIASResBlock = self._modules[name]  # type: ignore[assignment]
            if out is None:
                inp = feature
            else:
                if tuple(out.shape[2:]) != size:
                    out = F.interpolate(out, size=size, mode="nearest")
                inp = torch.cat([out, feature], 1)
            if block.use_mask_norm:
                out = block(inp, seg_div, misalign_mask)
            else:
                out = block(inp, seg)
        if tuple(out.shape[2:]) != tuple(x.shape[2:]):
            raise ValueError(f"ALIASGenerator: reached {tuple(out.shape[2:])}, expected {tuple(x.shape[2:])}")
        return torch.tanh(self.conv_img(self.relu(out)))
