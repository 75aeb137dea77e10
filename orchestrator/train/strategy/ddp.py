"""torch DistributedDataParallel: one DDP wrapper and one optimizer per network.

With a single worker the networks are not wrapped at all, so a 1-worker run costs the same as a
bare PyTorch loop. A phase stepping several networks calls each one's own DDP wrapper once per
micro-batch and backpropagates its loss once: every wrapper's reducer sees exactly its own
parameters' gradients. With fp16 each network keeps its own GradScaler, so a several-network phase
backpropagates once per network (``loss * its scale`` into its parameters only).
"""

from __future__ import annotations

import contextlib
from typing import ContextManager, Mapping, Sequence

import torch
import torch.distributed as dist
from torch import nn

from orchestrator.config import Config
from orchestrator.train.optim import OptimizerSettings, build_optimizer
from orchestrator.train.precision import Precision
from orchestrator.train.strategy.base import StepReport, Strategy
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
    def __init__(self, cfg: Config, nets: Mapping[str, nn.Module], specs: tuple[NetworkSpec, ...],
                 optimizers: Mapping[str, OptimizerSettings], device: torch.device, precision: Precision) -> None:
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
        self._optimizers = {name: build_optimizer(optimizers[name], self._modules[name].parameters(),
                                                  fused=device.type == "cuda")
                            for name in self.specs}

    def module(self, name: str) -> nn.Module:
        return self._modules[name]

    def phase_modules(self, names: Sequence[str]) -> dict[str, nn.Module]:
        return {name: self._wrapped[name] for name in names}

    def accumulate(self, names: Sequence[str], boundary: bool) -> ContextManager[None]:
        stack = contextlib.ExitStack()
        if not boundary:
            for name in names:
                wrapped = self._wrapped[name]
                if isinstance(wrapped, nn.parallel.DistributedDataParallel):
                    stack.enter_context(wrapped.no_sync())
        return stack

    def backward(self, names: Sequence[str], loss: torch.Tensor) -> None:
        if len(names) == 1 or not any(name in self.precision.scalers for name in names):
            # One backward reaches every network of the phase (one scale, or none: fp32/bf16).
            self.precision.scale(names[0], loss).backward()
            return
        for i, name in enumerate(names):  # fp16: each network's own scale, into its parameters only
            params = [p for p in self._modules[name].parameters() if p.requires_grad]
            self.precision.scale(name, loss).backward(inputs=params, retain_graph=i < len(names) - 1)

    def step(self, name: str) -> StepReport:
        optimizer = self._optimizers[name]
        self.precision.unscale_(name, optimizer)
        params = [p for p in self._modules[name].parameters() if p.grad is not None]
        clip = self.cfg.train.grad_clip if self.cfg.train.grad_clip > 0 else float("inf")
        grad_norm = torch.nn.utils.clip_grad_norm_(params, clip) if params else torch.zeros(())
        stepped = self.precision.step(name, optimizer)
        optimizer.zero_grad(set_to_none=True)
        return StepReport(stepped=stepped, grad_norm=grad_norm)

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
