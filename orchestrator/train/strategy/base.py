"""How networks are wrapped, backpropagated and stepped: the part that differs between DDP and DeepSpeed.

The trainer talks to a ``Strategy`` only through: ``module`` (the plain network, e.g. to run a
frozen D inside G's loss or to evaluate), ``phase_modules`` (what a phase's loss calls for the
networks it steps: the DDP wrappers, DeepSpeed's engines), ``accumulate`` (no gradient all-reduce
on all but the last micro-batch of an optimizer step), ``backward`` (of one phase loss into every
network the phase steps), ``step`` (one network), and state save/load. Anything recipe-specific
stays out; any number of networks per phase is supported.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import ContextManager, Mapping, Sequence

import torch
from torch import nn

from vton_models.recipe import NetworkSpec


@dataclass(frozen=True)
class StepReport:
    """What one optimizer step of one network did, as device tensors where the strategy has them
    (reading them on the host would wait for the device; the trainer reduces them at log points)."""

    stepped: torch.Tensor | bool  # False when the fp16 scaler found inf/NaN gradients and skipped it
    grad_norm: torch.Tensor | float  # total gradient norm before clipping (after unscaling)


class Strategy(ABC):
    """Owns the networks' optimizers and their distributed wrapping."""

    specs: Mapping[str, NetworkSpec]

    @abstractmethod
    def module(self, name: str) -> nn.Module: ...

    @abstractmethod
    def phase_modules(self, names: Sequence[str]) -> dict[str, nn.Module]:
        """What a phase that steps ``names`` calls for each of them (in its loss)."""

    @abstractmethod
    def accumulate(self, names: Sequence[str], boundary: bool) -> ContextManager[None]:
        """Around one micro-batch of a phase; gradients are reduced across ranks only on ``boundary``."""

    @abstractmethod
    def backward(self, names: Sequence[str], loss: torch.Tensor) -> None:
        """Gradients of ``loss`` into every network of ``names`` (and no other)."""

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
        """Schedules, and PBT: a trial that copies a donor's checkpoint keeps its own learning rates."""
        for group in self.optimizer(name).param_groups:
            group["lr"] = lr

    def lr(self, name: str) -> float:
        return float(self.optimizer(name).param_groups[0]["lr"])

    def network_state_dicts(self) -> dict[str, dict]:
        """Plain PyTorch state dicts (no wrapper prefixes), for MLflow and inference."""
        return {name: self.module(name).state_dict() for name in self.specs}
