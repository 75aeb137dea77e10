"""torch DistributedDataParallel: one DDP wrapper and one optimizer per network."""

from __future__ import annotations

import contextlib
from typing import Mapping

import torch
import torch.distributed as dist
from torch import nn

from orchestrator.config import Config
from orchestrator.train.precision import Precision
from orchestrator.train.strategy.base import StepReport, Strategy, _learning_rate
from vton_models.recipe import NetworkSpec


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
