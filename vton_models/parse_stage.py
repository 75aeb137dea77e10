"""What every stage that predicts the target person's LIP parse shares (seed 002's parse net, seed
004's G1): shown in the LIP palette, and judged by its parse, not as an image."""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

import torch
from torch import nn

from vton_models.metrics.parse import parse_scores
from vton_models.representation.parse import NUM_LIP_LABELS
from vton_models.visual import palette_image

Tensor = torch.Tensor


class TargetParseStage:
    """Mixin (before ``Recipe`` in the bases) for a recipe with ``logits(G, inputs)`` over the 20 LIP
    labels of the target person, whose batch holds ``tgt_parse_onehot`` and ``parse``."""

    tries_on: ClassVar[bool] = False  # its output is a parse map

    def logits(self, G: nn.Module, inputs: Mapping[str, Tensor]) -> Tensor:
        raise NotImplementedError

    def generate(self, nets: Mapping[str, nn.Module], inputs: Mapping[str, Tensor]) -> Tensor:
        return palette_image(self.logits(nets["G"], inputs))

    def target(self, inputs: Mapping[str, Tensor]) -> Tensor:
        return palette_image(inputs["tgt_parse_onehot"])

    def validation_metrics(self, nets: Mapping[str, nn.Module], inputs: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """Pixel accuracy and mean IoU over the classes present."""
        return parse_scores(self.logits(nets["G"], inputs).argmax(1), inputs["parse"], NUM_LIP_LABELS)
