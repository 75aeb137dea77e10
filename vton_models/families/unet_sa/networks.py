"""U-Net + self-attention generator of the seed-000 paper ("multimodal U-Net", recipe ``unet_sa``).

Layout (paper Sec. 4.1, Tables 2-3, Eqs. 13-19)::

    41-ch input -> stem Conv7x7 (ngf)                                   H x W
      -> n_downsampling x [Conv4x4 s2, IN, LeakyReLU(0.2)]              ngf*2 .. ngf*8 (capped)
      -> n_blocks x ResnetBlock -> SelfAttention2d                      H/2^n x W/2^n
      -> n_downsampling x [concat(x, encoder skip) -> ConvT4x4 s2, IN, ReLU]
      -> concat(x, stem) -> Conv3x3 (ngf), IN, ReLU -> Conv7x7 (3) -> tanh

Decisions where the paper is silent, following its author's public notebook
(github.com/Huzaifanasir95/AI-Virtual-TryOn, ``notebooks/08_model_architecture.ipynb``):

- the stem uses IN + ReLU; convolutions followed by instance norm carry no bias (the norm's mean
  subtraction cancels a bias exactly);
- each up block concatenates the encoder feature of *its input* resolution before the transposed
  convolution (Eq. 18, ``ConvTranspose([x; s])``); the stem feature is concatenated before the
  output head, fused by a 3x3 convolution, then mapped to RGB by the 7x7 convolution of Eq. 19.

Parameter counts (41 -> 3 channels, ngf=64), identical to what the author's notebook prints:
``reduced`` (n_downsampling=3, n_blocks=6) 37,109,124 and ``full`` (4, 9) 63,847,812.
The paper's text claims 26,378,627 and 54.4M instead. Those figures cannot come from the
architecture the paper describes: the six 3x3 residual blocks of the reduced configuration at the
512-channel bottleneck (Table 2) hold 6 x 2 x 9 x 512^2 = 28,311,552 weights on their own, more
than the claimed total. We therefore keep the architecture of the text (and of the author's code)
and report its real size; see ``tests/test_unet_sa_model.py``.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from vton_models.layers.attention import SelfAttention2d
from vton_models.layers.residual import ResnetBlock

#: Named configurations of the paper: ``full`` is the architecture of Sec. 4.1, ``reduced`` the
#: CPU proof-of-concept one it was actually trained with (Sec. 6.1).
VARIANTS: dict[str, dict[str, int]] = {
    "full": {"n_downsampling": 4, "n_blocks": 9},
    "reduced": {"n_downsampling": 3, "n_blocks": 6},
}


class _Down(nn.Sequential):
    """Eq. 13: LeakyReLU(IN(Conv4x4 stride 2))."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(
            nn.Conv2d(in_channels, out_channels, 4, stride=2, padding=1, bias=False),
            nn.InstanceNorm2d(out_channels),
            nn.LeakyReLU(0.2, inplace=True),
        )


class _Up(nn.Sequential):
    """Eq. 18: ReLU(IN(ConvTranspose4x4 stride 2)) applied to ``[x; skip]``."""

    def __init__(self, in_channels: int, out_channels: int, dropout: float) -> None:
        layers: list[nn.Module] = [
            nn.ConvTranspose2d(in_channels, out_channels, 4, stride=2, padding=1, bias=False),
            nn.InstanceNorm2d(out_channels),
            nn.ReLU(inplace=True),
        ]
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        super().__init__(*layers)


def _check_positive_int(name: str, value: Any, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return value


class UnetSAGenerator(nn.Module):
    """The seed-000 generator. ``forward(x)`` maps (B, input_channels, H, W) to (B, 3, H, W) in [-1, 1].

    H and W must be divisible by ``2 ** n_downsampling`` so that encoder and decoder features line
    up for the skip concatenations.
    """

    def __init__(
        self,
        input_channels: int = 41,
        output_channels: int = 3,
        ngf: int = 64,
        n_downsampling: int = 4,
        n_blocks: int = 9,
        max_multiplier: int = 8,
        attention: bool = True,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        _check_positive_int("input_channels", input_channels)
        _check_positive_int("output_channels", output_channels)
        _check_positive_int("ngf", ngf)
        _check_positive_int("n_downsampling", n_downsampling)
        _check_positive_int("n_blocks", n_blocks, minimum=0)
        _check_positive_int("max_multiplier", max_multiplier)
        if not isinstance(attention, bool):
            raise ValueError(f"attention must be true or false, got {attention!r}")
        if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be a number in [0, 1), got {dropout!r}")

        self.input_channels = input_channels
        self.output_channels = output_channels
        self.n_downsampling = n_downsampling
        # channels[i] is the width at resolution H / 2^i; the cap keeps the deepest levels at
        # ngf * max_multiplier (64 * 8 = 512 in Table 2, where Down3 and Down4 are both 512).
        channels = [ngf * min(2**i, max_multiplier) for i in range(n_downsampling + 1)]
        bottleneck = channels[-1]
        if attention and bottleneck % 8:
            raise ValueError(
                f"attention needs a bottleneck width divisible by 8 (C/8 query/key channels); "
                f"ngf={ngf} gives {bottleneck}"
            )

        self.stem = nn.Sequential(
            nn.Conv2d(input_channels, ngf, 7, padding=3, bias=False),
            nn.InstanceNorm2d(ngf),
            nn.ReLU(inplace=True),
        )
        self.down = nn.ModuleList(_Down(channels[i], channels[i + 1]) for i in range(n_downsampling))
        self.bottleneck = nn.Sequential(*(ResnetBlock(bottleneck, dropout) for _ in range(n_blocks)))
        self.attention = SelfAttention2d(bottleneck) if attention else nn.Identity()
        # Up block j works at level n - j: input [x; encoder feature of that level], output the
        # width of the level above.
        self.up = nn.ModuleList(
            _Up(2 * channels[level], channels[level - 1], dropout)
            for level in range(n_downsampling, 0, -1)
        )
        self.head = nn.Sequential(
            nn.Conv2d(2 * ngf, ngf, 3, padding=1, bias=False),
            nn.InstanceNorm2d(ngf),
            nn.ReLU(inplace=True),
            nn.Conv2d(ngf, output_channels, 7, padding=3),
            nn.Tanh(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or x.shape[1] != self.input_channels:
            raise ValueError(
                f"UnetSAGenerator expects (B, {self.input_channels}, H, W) input, got {tuple(x.shape)}"
            )
        factor = 2**self.n_downsampling
        if x.shape[2] % factor or x.shape[3] % factor:
            raise ValueError(
                f"UnetSAGenerator with n_downsampling={self.n_downsampling} needs H and W divisible "
                f"by {factor}, got {tuple(x.shape[2:])}"
            )
        stem = self.stem(x)
        skips = []
        h = stem
        for block in self.down:
            h = block(h)
            skips.append(h)
        h = self.attention(self.bottleneck(h))
        for block, skip in zip(self.up, reversed(skips)):
            h = block(torch.cat([h, skip], dim=1))
        return self.head(torch.cat([h, stem], dim=1))


def build_unet_sa_generator(variant: str = "full", **overrides: Any) -> UnetSAGenerator:
    """A generator of a named ``variant`` with keyword ``overrides`` (e.g. ``ngf=8`` in tests).

    ``None`` values in ``overrides`` mean "use the variant's value", so a config can leave
    ``n_blocks`` unset and still pick ``variant: reduced``.
    """
    if variant not in VARIANTS:
        raise ValueError(f"unknown unet_sa variant {variant!r}; allowed: {sorted(VARIANTS)}")
    kwargs: dict[str, Any] = dict(VARIANTS[variant])
    kwargs.update({k: v for k, v in overrides.items() if v is not None})
    return UnetSAGenerator(**kwargs)
