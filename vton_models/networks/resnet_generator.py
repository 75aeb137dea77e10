"""pix2pix's ResnetGenerator (Johnson et al.; Isola et al.) with a pluggable middle block.

reflect-pad 3 + conv 7x7 -> IN -> ReLU; two [conv 3x3 / 2, IN, ReLU] (ngf -> 2ngf -> 4ngf); ``n_blocks``
middle blocks at 4ngf and a quarter of the resolution; two [conv-transpose 3x3 / 2 (output padding 1),
IN, ReLU]; reflect-pad 3 + conv 7x7 to the output channels (bias; no norm, no activation: the
caller splits and activates). Convolutions followed by IN carry no bias (IN cancels it).

Seed 002 builds its appearance and face generators from it with Tree-Blocks (``block="tree"``);
``block="resnet"`` gives its SRB-VTON baseline.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from vton_models.layers.residual import ResnetBlock
from vton_models.layers.tree_block import DEFAULT_DILATIONS, TreeBlock

BLOCKS = ("tree", "resnet")


class ResnetGenerator(nn.Module):
    """(B, in, H, W) -> (B, out, H, W); H and W divisible by 4."""

    def __init__(self, input_channels: int, output_channels: int, ngf: int = 64, n_blocks: int = 9,
                 block: str = "tree", dilations: Sequence[int] = DEFAULT_DILATIONS) -> None:
        super().__init__()
        if block not in BLOCKS:
            raise ValueError(f"ResnetGenerator: block {block!r} is not one of {list(BLOCKS)}")
        if n_blocks < 0:
            raise ValueError(f"ResnetGenerator: n_blocks must be >= 0, got {n_blocks}")
        self.input_channels = input_channels
        layers: list[nn.Module] = [nn.ReflectionPad2d(3), nn.Conv2d(input_channels, ngf, 7, bias=False),
                                   nn.InstanceNorm2d(ngf), nn.ReLU()]
        width = ngf
        for _ in range(2):
            layers += [nn.Conv2d(width, width * 2, 3, 2, 1, bias=False), nn.InstanceNorm2d(width * 2), nn.ReLU()]
            width *= 2
        for _ in range(n_blocks):
            layers.append(TreeBlock(width, dilations) if block == "tree" else ResnetBlock(width))
        for _ in range(2):
            layers += [nn.ConvTranspose2d(width, width // 2, 3, 2, 1, output_padding=1, bias=False),
                       nn.InstanceNorm2d(width // 2), nn.ReLU()]
            width //= 2
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(width, output_channels, 7)]
        self.model = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() != 4 or x.shape[1] != self.input_channels or x.shape[2] % 4 or x.shape[3] % 4:
            raise ValueError(f"ResnetGenerator expects (B, {self.input_channels}, H, W) with H and W divisible by 4, "
                             f"got {tuple(x.shape)}")
        return self.model(x)
