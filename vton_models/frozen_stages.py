"""What a stage that runs earlier stages' registered generators, frozen, keeps of them (seeds 002
and 004: an appearance stage on a frozen parse net, SPG's try-on step on a frozen G1)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import torch
from torch import nn

from vton_models.recipe import Recipe, RecipeContext


class FrozenStages:
    """Mixin (before ``Recipe`` in the bases) holding the consumed stages the orchestrator attaches.

    ``stage_classes`` maps each ``consumes`` key to the recipe class its registered model must have
    been trained by; a model of another kind is refused by name when it is attached."""

    stage_classes: ClassVar[dict[str, type[Recipe]]] = {}

    def __init__(self, context: RecipeContext) -> None:
        super().__init__(context)  # type: ignore[call-arg]
        #: Consumed stages attached so far: key -> (their recipe, their generator, frozen).
        self.frozen: dict[str, tuple[Recipe, nn.Module]] = {}

    def attach_stage(self, key: str, stage: Recipe, networks: Mapping[str, nn.Module]) -> None:
        expected = self.stage_classes.get(key)
        if expected is None or not isinstance(stage, expected):
            raise ValueError(f"recipe '{self.name}': model.{key} must be a registered "  # type: ignore[attr-defined]
                             f"'{self.consumes.get(key, key)}' model, got a '{stage.name}' model")  # type: ignore[attr-defined]
        self.frozen[key] = (stage, networks["G"].eval().requires_grad_(False))

    def attached(self, key: str, device: torch.device) -> tuple[Any, nn.Module]:
        """(the stage's recipe, its generator on ``device``)."""
        recipe, net = self.frozen[key]
        return recipe, net.to(device)

    def require_attached(self, keys: Sequence[str]) -> None:
        missing = [key for key in keys if key not in self.frozen]
        if missing:
            raise ValueError(f"recipe '{self.name}' needs model.{missing[0]} (models:/... of a "  # type: ignore[attr-defined]
                             f"registered {self.consumes[missing[0]]} stage); none is attached")  # type: ignore[attr-defined]
