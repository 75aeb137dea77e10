"""How networks are wrapped, backpropagated and stepped: DDP (``ddp``) or DeepSpeed (``deepspeed``)."""

from __future__ import annotations

from typing import Mapping

import torch
from torch import nn

from orchestrator.config import Config
from orchestrator.train.optim import OptimizerSettings
from orchestrator.train.precision import Precision
from orchestrator.train.strategy.base import StepReport, Strategy
from vton_models.recipe import NetworkSpec


def build_strategy(cfg: Config, nets: Mapping[str, nn.Module], specs: tuple[NetworkSpec, ...],
                   optimizers: Mapping[str, OptimizerSettings], device: torch.device,
                   precision: Precision) -> Strategy:
    if cfg.strategy.name == "ddp":
        from orchestrator.train.strategy.ddp import DDPStrategy

        return DDPStrategy(cfg, nets, specs, optimizers, device, precision)
    if cfg.strategy.name == "deepspeed":
        from orchestrator.train.strategy.deepspeed import DeepSpeedStrategy  # DeepSpeed imports slowly: only when used

        return DeepSpeedStrategy(cfg, nets, specs, optimizers, device, precision)
    raise NotImplementedError(f"strategy.name: '{cfg.strategy.name}' is not a known strategy")


__all__ = ["StepReport", "Strategy", "build_strategy"]
