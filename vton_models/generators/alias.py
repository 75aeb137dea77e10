"""VITON-HD ALIAS generator: try-on image from (agnostic image, pose, warped cloth) conditioned on the parse.

Input ``x`` (9 channels): image-agnostic (3), rendered pose (3), warped cloth (3). Conditioning:
``seg`` is the 7-class parse; ``seg_div`` is that parse with the misalignment mask moved into an 8th
channel (VITON-HD ``test.py``), and ``misalign_mask`` drives MaskNorm in the first (low-resolution)
blocks. Like SPADE it starts from a tiny latent map and upsamples; at every block the input is
resampled to that block's resolution, passed through its own 3x3 conv (16 channels) and concatenated,
so fine detail of the warped cloth enters at every scale.

``num_upsampling_layers``: ``normal`` (5 upsamplings), ``more`` (6: one between the middle blocks),
``most`` (7: plus a final ``up_4`` block at half width; the official setting, 100,498,115 parameters at
ngf 64). Unlike the official code, each block's size is derived from the output size (nearest
upsampling to an explicit size, identical to scale-factor 2 when sizes divide), so ``normal`` works
and small test resolutions need not be divisible by 2**7.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from vton_models.layers.alias import ALIASResBlock

Tensor = torch.Tensor

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
