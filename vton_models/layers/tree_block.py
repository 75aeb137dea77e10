"""The Tree-Block of seed 002 ("Down to the last detail", Wang et al., ICME 2020, Eqs. 1-3).

Parallel dilated 3x3 branches look at the same feature map at several scales (Eq. 1); their outputs
are fused pairwise by 1x1 convolutions up a binary tree (Eq. 2); the root is added to the input
(Eq. 3). The paper's Fig. 3 (branch count, dilations) is not in its text, so the design is our
choice (FAMILIES.md §2.3.4): four branches ``conv3x3(dilation d, reflect padding d, no bias) -> IN ->
ReLU`` with d = 1, 2, 4, 8, and three fusions ``ReLU(conv1x1(2C -> C, bias))``. A block then sees
17x17 pixels (1 + 2 * 8), against a ResNet block's 5x5, at 2,753,280 parameters for C = 256 (a ResNet
block: 1,179,648).

With every fusion weight and bias zero the root is ReLU(0) = 0 and the block is the identity,
which is why the fusions carry the bias: a block can start near identity and learn what to add.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

DEFAULT_DILATIONS: tuple[int, ...] = (1, 2, 4, 8)


def check_dilations(dilations: Sequence[int], what: str = "tree_dilations") -> tuple[int, ...]:
    """The dilations as a tuple; their count must be a power of two >= 2 (a full binary fusion tree)."""
    values = tuple(dilations)
    n = len(values)
    if n < 2 or n & (n - 1) or any(isinstance(d, bool) or not isinstance(d, int) or d < 1 for d in values):
        raise ValueError(f"{what}: expected a power-of-two count (>= 2) of integers >= 1, got {list(values)}")
    return values


class TreeBlock(nn.Module):
    """``x + tree_fusion(branches(x))``, shape-preserving (B, C, H, W); H and W must exceed the
    largest dilation (reflection padding)."""

    def __init__(self, channels: int, dilations: Sequence[int] = DEFAULT_DILATIONS) -> None:
        super().__init__()
        if channels <= 0:
            raise ValueError(f"TreeBlock: channels must be positive, got {channels}")
        self.dilations = check_dilations(dilations)
        self.branches = nn.ModuleList(
            nn.Sequential(nn.Conv2d(channels, channels, 3, padding=d, dilation=d, padding_mode="reflect", bias=False),
                          nn.InstanceNorm2d(channels), nn.ReLU())
            for d in self.dilations)
        # Level by level: n/2 fusions over the branches, then n/4 over those, ..., one at the root.
        self.fusions = nn.ModuleList(nn.Conv2d(2 * channels, channels, 1) for _ in range(len(self.dilations) - 1))

    def forward(self, x: Tensor) -> Tensor:
        if min(x.shape[-2:]) <= max(self.dilations):
            raise ValueError(f"TreeBlock: a {tuple(x.shape[-2:])} feature map is too small for dilation "
                             f"{max(self.dilations)} (reflection padding needs each side > {max(self.dilations)})")
        level = [branch(x) for branch in self.branches]
        fusions = iter(self.fusions)
        while len(level) > 1:
            level = [torch.relu(next(fusions)(torch.cat(level[i:i + 2], 1))) for i in range(0, len(level), 2)]
        return x + level[0]
