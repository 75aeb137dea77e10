"""How networks are wrapped, backpropagated and stepped: the part that differs between DDP and DeepSpeed.

The loop talks to a ``Strategy`` only through: ``module`` (the plain network, e.g. to run a frozen
D inside G's loss or to evaluate), ``forward_module`` (what to call in the network's own phase: the
DDP wrapper), ``accumulate`` (no gradient all-reduce on all but the last micro-batch of an
optimizer step), ``backward``, ``step``, and state save/load. Anything recipe-specific stays out.
"""

from __future__ import annotations

import contextlib
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

import torch
import torch.distributed as dist
from torch import nn

from orchestrator.config import Config
from orchestrator.precision import Precision
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


def has_running_statistics(net: nn.Module) -> bool:
    """Whether ``net`` holds buffers that depend on each rank's data (BatchNorm running statistics).

    Only those need DDP's ``broadcast_buffers`` (a collective before *every* forward, several per
    GAN step). The other buffers our networks hold — spectral norm's power-iteration vectors —
    evolve from the weights alone, which DDP keeps identical, so once every rank starts from rank
    0's values they stay equal (tests/test_loop.py checks both ranks bit for bit).
    """
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats for m in net.modules())


class DDPStrategy(Strategy):
    """torch DistributedDataParallel per network, one Adam optimizer per network.

    With a single worker the networks are not wrapped at all, so a 1-worker run costs the same as a
    bare PyTorch loop.
    """

    def __init__(self, cfg: Config, nets: Mapping[str, nn.Module], specs: tuple[NetworkSpec, ...],
                 device: torch.device, precision: Precision) -> None:
        self.cfg = cfg
        self.precision = precision
        self.specs = {spec.name: spec for spec in specs}
        self._modules = {name: net.to(device) for name, net in nets.items()}
        distributed = dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1
        self._wrapped: dict[str, nn.Module] = {}
        for name, net in self._modules.items():
            if distributed:
                if not has_running_statistics(net):
                    # DDP then skips buffers at construction too: start every rank from rank 0's.
                    for buffer in net.buffers():
                        dist.broadcast(buffer, src=0)
                self._wrapped[name] = nn.parallel.DistributedDataParallel(
                    net,
                    device_ids=[device.index] if device.type == "cuda" else None,
                    find_unused_parameters=cfg.strategy.find_unused_parameters,
                    broadcast_buffers=has_running_statistics(net),
                )
            else:
                self._wrapped[name] = net
        self._optimizers = {
            name: torch.optim.Adam(self._modules[name].parameters(), lr=_learning_rate(cfg, spec),
                                   betas=tuple(cfg.train.betas))
            for name, spec in self.specs.items()
        }

    def module(self, name: str) -> nn.Module:
        return self._modules[name]

    def forward_module(self, name: str) -> nn.Module:
        return self._wrapped[name]

    def accumulate(self, name: str, boundary: bool):
        wrapped = self._wrapped[name]
        if boundary or not isinstance(wrapped, nn.parallel.DistributedDataParallel):
            return contextlib.nullcontext()
        return wrapped.no_sync()

    def backward(self, name: str, loss: torch.Tensor) -> None:
        self.precision.scale(name, loss).backward()

    def step(self, name: str) -> StepReport:
        optimizer = self._optimizers[name]
        self.precision.unscale_(name, optimizer)
        params = [p for p in self._modules[name].parameters() if p.grad is not None]
        clip = self.cfg.train.grad_clip if self.cfg.train.grad_clip > 0 else float("inf")
        grad_norm = torch.nn.utils.clip_grad_norm_(params, clip) if params else torch.tensor(0.0)
        stepped = self.precision.step(name, optimizer)
        optimizer.zero_grad(set_to_none=True)
        return StepReport(stepped=stepped, grad_norm=float(grad_norm))

    def optimizer(self, name: str) -> torch.optim.Optimizer:
        return self._optimizers[name]

    def state_dict(self) -> dict:
        return {
            "networks": self.network_state_dicts(),
            "optimizers": {name: opt.state_dict() for name, opt in self._optimizers.items()},
            "scalers": self.precision.state_dict(),
        }

    def load_state_dict(self, state: dict) -> None:
        for name, net_state in state["networks"].items():
            self._modules[name].load_state_dict(net_state)
        for name, opt_state in state["optimizers"].items():
            self._optimizers[name].load_state_dict(opt_state)
        self.precision.load_state_dict(state.get("scalers", {}))


def build_strategy(cfg: Config, nets: Mapping[str, nn.Module], specs: tuple[NetworkSpec, ...],
                   device: torch.device, precision: Precision) -> Strategy:
    if cfg.strategy.name == "ddp":
        return DDPStrategy(cfg, nets, specs, device, precision)
    if cfg.strategy.name == "deepspeed":
        from orchestrator.strategy_deepspeed import DeepSpeedStrategy  # DeepSpeed imports slowly: only when used

        return DeepSpeedStrategy(cfg, nets, specs, device, precision)
    raise NotImplementedError(f"strategy.name: '{cfg.strategy.name}' is not a known strategy")
