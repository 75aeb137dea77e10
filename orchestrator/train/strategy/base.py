"""How networks are wrapped, backpropagated and stepped: the part that differs between DDP and DeepSpeed.

The loop talks to a ``Strategy`` only through: ``module`` (the plain network, e.g. to run a frozen
D inside G's loss or to evaluate), ``forward_module`` (what to call in the network's own phase: the
DDP wrapper), ``accumulate`` (no gradient all-reduce on all but the last micro-batch of an
optimizer step), ``backward``, ``step``, and state save/load. Anything recipe-specific stays out.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

import torch
from torch import nn

from orchestrator.config import Config
from vton_models.recipe import NetworkSpec


@dataclass(frozen=True)
class StepReport:
    stepped: bool  # False when the fp16 scaler found inf/NaN gradients and skipped the step
    grad_norm: float  # total gradient norm before clipping (after unscaling)


def _learning_rate(cfg: Config, spec: NetworkSpec) -> float:
    section, key = spec.lr_key.split(".")
    return float(getattr(getattr(cfg, section), key))


class Strategy(ABC):
    """Owns the networks' optimizers and their distributed wrapping."""

    specs: Mapping[str, NetworkSpec]

    @abstractmethod
    def module(self, name: str) -> nn.Module: ...

    @abstractmethod
    def forward_module(self, name: str) -> nn.Module: ...

    @abstractmethod
    def accumulate(self, name: str, boundary: bool): ...

    @abstractmethod
    def backward(self, name: str, loss: torch.Tensor) -> None: ...

    @abstractmethod
    def step(self, name: str) -> StepReport: ...

    @abstractmethod
    def optimizer(self, name: str) -> torch.optim.Optimizer: ...

    @abstractmethod
    def state_dict(self) -> dict: ...

    @abstractmethod
    def load_state_dict(self, state: dict) -> None: ...

    def save_to(self, directory: Path, rank: int) -> None:
        """Called on EVERY rank after the loop wrote ``state.pt``: strategies whose state is sharded
        across ranks (DeepSpeed ZeRO) write their own files here. DDP's state is all in
        ``state_dict()`` (written by rank 0), so the default writes nothing."""

    def load_from(self, directory: Path, rank: int) -> None:
        """Called on EVERY rank after ``load_state_dict``; the counterpart of ``save_to``."""

    def set_lr(self, name: str, lr: float) -> None:
        """Used by PBT: a trial that copies a donor's checkpoint keeps its own learning rates."""
        for group in self.optimizer(name).param_groups:
            group["lr"] = lr

    def network_state_dicts(self) -> dict[str, dict]:
        """Plain PyTorch state dicts (no wrapper prefixes), for MLflow and inference."""
        return {name: self.module(name).state_dict() for name in self.specs}
