"""Exponential moving averages of the generators' weights, used for evaluation and export."""

from __future__ import annotations

import torch
from torch import nn


class NetworkEMA:
    """EMA of one network. ``module`` is a fresh, plain copy (never a strategy's wrapped module: a
    strategy may hang state on what it wraps, e.g. DeepSpeed's ZeRO hooks)."""

    def __init__(self, module: nn.Module, decay: float) -> None:
        self.decay = decay
        self.module = module.eval().requires_grad_(False)

    @torch.no_grad()
    def update(self, network: nn.Module) -> None:
        for ema_p, p in zip(self.module.parameters(), network.parameters()):
            ema_p.lerp_(p.detach(), 1.0 - self.decay)
        for ema_b, b in zip(self.module.buffers(), network.buffers()):
            ema_b.copy_(b)
