"""Mixed precision: fp32, bf16 autocast, or fp16 autocast with ONE GradScaler PER NETWORK.

A GAN has two optimisation problems with very different gradient scales; sharing one scaler
couples them (an overflow in D would shrink G's scale and skip G's step too). With one scaler per
network an inf in G's gradients skips exactly G's step and backs off only G's scale. Each scaler
gets exactly one ``update()`` per optimizer step (calling it twice per step, as some public GAN
code does, halves the scale twice on overflow).
"""

from __future__ import annotations

import contextlib
from typing import Iterable

import torch

_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


class Precision:
    def __init__(self, mode: str, device: torch.device, networks: Iterable[str],
                 init_scale: float = 65536.0, growth_interval: int = 2000) -> None:
        if mode not in ("fp32", "bf16", "fp16"):
            raise ValueError(f"precision.mode: '{mode}' is not one of fp32, bf16, fp16")
        self.mode = mode
        self.device_type = device.type
        self.scalers: dict[str, torch.amp.GradScaler] = {}
        if mode == "fp16":
            self.scalers = {
                name: torch.amp.GradScaler(self.device_type, init_scale=init_scale, growth_interval=growth_interval)
                for name in networks
            }

    def autocast(self):
        if self.mode == "fp32":
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device_type, dtype=_DTYPES[self.mode])

    def scale(self, name: str, loss: torch.Tensor) -> torch.Tensor:
        scaler = self.scalers.get(name)
        return scaler.scale(loss) if scaler else loss

    def unscale_(self, name: str, optimizer: torch.optim.Optimizer) -> None:
        scaler = self.scalers.get(name)
        if scaler:
            scaler.unscale_(optimizer)

    def step(self, name: str, optimizer: torch.optim.Optimizer) -> torch.Tensor | bool:
        """Step (unless the scaler found inf/NaN) and update the scaler; returns whether it stepped,
        as a device tensor with a scaler (reading it would wait for the device)."""
        scaler = self.scalers.get(name)
        if scaler is None:
            optimizer.step()
            return True
        scaler.step(optimizer)
        # GradScaler skips the step exactly when it backs the scale off. Compared on the device
        # (``get_scale()`` reads it on the host), through the scale tensor GradScaler keeps.
        before = scaler._scale.clone()
        scaler.update()
        return scaler._scale >= before

    def scale_value(self, name: str) -> float | None:
        scaler = self.scalers.get(name)
        return float(scaler.get_scale()) if scaler else None

    def state_dict(self) -> dict:
        return {name: scaler.state_dict() for name, scaler in self.scalers.items()}

    def load_state_dict(self, state: dict) -> None:
        for name, scaler in self.scalers.items():
            if name in state:
                scaler.load_state_dict(state[name])
