"""What every trial of a sweep shares, in a module of its own: the trial function and MLflow
tracking both read it, and neither should import the other for it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tune.space import SearchSpace


@dataclass(frozen=True)
class TrialSpec:
    """What every trial of a sweep shares (pickled once into each trial actor)."""

    sweep: str
    base_config: dict[str, Any]
    space: SearchSpace
    train_storage: str  # URL under which each generation's Train run keeps its checkpoints
    with_checkpoints: bool  # report checkpoints to Tune (PBT needs them; ASHA and Optuna do not)
    tracking: dict[str, str] = field(default_factory=dict)  # uri, experiment_id, parent_run_id; {} = off
