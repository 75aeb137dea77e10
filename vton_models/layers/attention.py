"""SAGAN self-attention for convolutional feature maps (Zhang et al., 2019).

Used at the U-Net bottleneck of the seed-000 generator, where every position can attend to every
other one (e.g. a sleeve to the opposite shoulder) at a cost of N^2 for N = H*W/4^n positions.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class SelfAttention2d(nn.Module):
    """``x + gamma * Attention(x)`` with C/``key_ratio`` query/key channels and a C-channel value.

    ``gamma`` starts at 0 so the block is an identity at initialisation: the network first learns
    local features and only mixes in non-local ones as ``gamma`` grows (SAGAN's rationale).

    ``scaled=True`` divides the logits by sqrt(d_k) as in the seed paper's Eq. 16; the original
    SAGAN code does not scale. Either way the attention runs through
    ``F.scaled_dot_product_attention``, which picks a memory-efficient kernel on GPUs instead of
    materialising the N x N map.
    """

    def __init__(self, channels: int, key_ratio: int = 8, scaled: bool = True) -> None:
        super().__init__()
        if channels <= 0:
            raise ValueError(f"SelfAttention2d: channels must be positive, got {channels}")
        if key_ratio <= 0 or channels % key_ratio:
            raise ValueError(
                f"SelfAttention2d: channels ({channels}) must be a positive multiple of "
                f"key_ratio ({key_ratio})"
            )
        key_channels = channels // key_ratio
        self.channels = channels
        self.key_channels = key_channels
        self.scaled = scaled
        self.query = nn.Conv2d(channels, key_channels, kernel_size=1)
        self.key = nn.Conv2d(channels, key_channels, kernel_size=1)
        self.value = nn.Conv2d(channels, channels, kernel_size=1)
        self.gamma = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        # (B, 1, N, d): one head, positions as the sequence axis.
        q = self.query(x).flatten(2).transpose(1, 2).unsqueeze(1)
        k = self.key(x).flatten(2).transpose(1, 2).unsqueeze(1)
        v = self.value(x).flatten(2).transpose(1, 2).unsqueeze(1)
        scale = 1.0 / math.sqrt(self.key_channels) if self.scaled else 1.0
        out = F.scaled_dot_product_attention(q, k, v, scale=scale)
        out = out.squeeze(1).transpose(1, 2).reshape(b, c, h, w)
        return x + self.gamma * out
