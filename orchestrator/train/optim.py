"""Each network's optimizer and learning-rate schedule, resolved from the recipe and the run config.

Precedence, per field and network (first that is set wins):

* ``lr``: ``train.lr.<network>``; ``train.lr_g`` / ``train.lr_d`` by role; the recipe's
  ``OptimizerSpec.lr``; 2e-4 for generators, 1e-4 for discriminators.
* ``betas``, ``weight_decay``, ``optimizer`` (type), ``schedule``: ``train.<key>.<network>``;
  ``train.<key>`` for every network (or its ``"*"`` entry); the recipe's ``OptimizerSpec``; the
  project default: (0.5, 0.999), 0, adam, and ``plateau`` if ``train.lr_plateau_patience`` > 0
  else ``constant``.

So a recipe states what its paper trains with (SPG-VTON: Adam with weight decay 5e-4, CP-VTON:
constant then linear decay), the shipped configs of today keep meaning what they meant, and Tune
or PBT can sweep and re-apply any network's rate by its config key.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable

import torch

from orchestrator.config import (
    Config,
    ConfigError,
    parse_betas,
    parse_optimizer,
    parse_schedule,
    parse_weight_decay,
    per_network,
)
from vton_models.recipe import NetworkSpec, Recipe

DEFAULT_LR = {"generator": 2e-4, "discriminator": 1e-4}
DEFAULT_BETAS = (0.5, 0.999)


@dataclass(frozen=True)
class OptimizerSettings:
    """One network's resolved optimizer: what the strategy builds and the schedule adjusts."""

    type: str  # adam | adamw
    lr: float
    betas: tuple[float, float]
    weight_decay: float
    schedule: str  # constant | plateau | linear_decay(KEEP, DECAY)


def _pick(cfg_value: Any, network: str, key: str, recipe_value: Any, default: Any, parse) -> Any:
    values = per_network(cfg_value)
    if network in values:
        return parse(values[network], f"train.{key}.{network}")
    if "*" in values:
        return parse(values["*"], f"train.{key}")
    return default if recipe_value is None else recipe_value


def _schedule_text(value: Any, key: str) -> str:
    parse_schedule(value, key)
    return str(value).replace(" ", "")


def _learning_rate(cfg: Config, spec: NetworkSpec) -> float:
    if spec.name in cfg.train.lr:
        return float(cfg.train.lr[spec.name])
    shorthand = cfg.train.lr_g if spec.role == "generator" else cfg.train.lr_d
    if shorthand is not None:
        return float(shorthand)
    return float(spec.optimizer.lr) if spec.optimizer.lr is not None else DEFAULT_LR[spec.role]


def resolve_optimizers(cfg: Config, recipe: Recipe) -> dict[str, OptimizerSettings]:
    """``{network: OptimizerSettings}``; a per-network key naming no network of the recipe is an error."""
    names = [spec.name for spec in recipe.networks]
    for key in ("lr", "betas", "weight_decay", "optimizer", "schedule"):
        unknown = sorted(set(per_network(getattr(cfg.train, key))) - set(names) - {"*"})
        if unknown:
            raise ConfigError(f"train.{key}: no network {unknown[0]!r} in recipe '{recipe.name}' "
                              f"(its networks: {', '.join(names)})")
    default_schedule = "plateau" if cfg.train.lr_plateau_patience > 0 else "constant"
    settings = {}
    for spec in recipe.networks:
        own = spec.optimizer
        schedule = _pick(cfg.train.schedule, spec.name, "schedule", own.schedule, default_schedule, _schedule_text)
        if parse_schedule(schedule, f"train.schedule.{spec.name}")[0] == "plateau" and cfg.train.lr_plateau_patience < 1:
            raise ConfigError(f"train.schedule.{spec.name}: plateau needs train.lr_plateau_patience >= 1 "
                              f"(it is {cfg.train.lr_plateau_patience})")
        settings[spec.name] = OptimizerSettings(
            type=_pick(cfg.train.optimizer, spec.name, "optimizer", own.type, "adam", parse_optimizer),
            lr=_learning_rate(cfg, spec),
            betas=_pick(cfg.train.betas, spec.name, "betas", own.betas, DEFAULT_BETAS, parse_betas),
            weight_decay=_pick(cfg.train.weight_decay, spec.name, "weight_decay", own.weight_decay or None, 0.0,
                               parse_weight_decay),
            schedule=schedule,
        )
    return settings


def build_optimizer(settings: OptimizerSettings, params: Iterable[torch.nn.Parameter],
                    fused: bool = False) -> torch.optim.Optimizer:
    """torch Adam (weight decay as the L2 term, as SPG-VTON's "Adam, weight decay") or AdamW.

    ``fused`` (CUDA): one kernel per step, and with fp16 the GradScaler hands it the inf check
    instead of reading it on the host (no synchronisation per step)."""
    cls = torch.optim.AdamW if settings.type == "adamw" else torch.optim.Adam
    extra = {"fused": True} if fused else {}
    return cls(params, lr=settings.lr, betas=settings.betas, weight_decay=settings.weight_decay, **extra)


# ----------------------------------------------------------------------------------------- schedules


class Schedule:
    """Sets a network's learning rate; the trainer calls ``before_step`` before every optimizer step
    and ``after_validation`` after every held-out evaluation."""

    def before_step(self, step: int) -> float | None:
        """The rate for optimizer step ``step`` (0-based), or None to leave it as it is."""
        return None

    def after_validation(self, value: float) -> None:
        """React to the held-out L1 (only ``plateau`` does)."""

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass


class LinearDecay(Schedule):
    """Constant for ``keep`` steps, then linearly down to zero over ``decay`` steps (CP-VTON's
    ``lr_lambda = 1 - max(0, step - keep) / (decay + 1)``). Computed from the configured base rate
    and the step alone, so resuming or re-applying a PBT trial's rate needs no saved state."""

    def __init__(self, base_lr: float, keep: int, decay: int) -> None:
        self.base_lr, self.keep, self.decay = base_lr, keep, decay

    def before_step(self, step: int) -> float:
        return self.base_lr * max(0.0, 1.0 - max(0, step - self.keep) / float(self.decay + 1))


class Plateau(Schedule):
    """torch's ReduceLROnPlateau on the held-out L1 (``train.lr_plateau_patience`` / ``_factor``)."""

    def __init__(self, optimizer: torch.optim.Optimizer, patience: int, factor: float) -> None:
        self.scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode="min", factor=factor,
                                                                    patience=patience)

    def after_validation(self, value: float) -> None:
        self.scheduler.step(value)

    def state_dict(self) -> dict:
        return self.scheduler.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.scheduler.load_state_dict(state)


def build_schedule(cfg: Config, settings: OptimizerSettings, optimizer: torch.optim.Optimizer) -> Schedule:
    kind, args = parse_schedule(settings.schedule)
    if kind == "linear_decay":
        return LinearDecay(settings.lr, *args)
    if kind == "plateau":
        return Plateau(optimizer, cfg.train.lr_plateau_patience, cfg.train.lr_plateau_factor)
    return Schedule()
