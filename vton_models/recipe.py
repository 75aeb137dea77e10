"""The recipe interface: everything the generic GAN loop needs to know about one model family.

The trainer (``orchestrator/train/loop.py``) knows nothing about try-on. Per micro-batch it calls
``inputs`` -> ``d_losses`` -> ``g_losses`` and weights the returned terms with ``loss_weights``;
the strategy does backward/step/accumulation/precision. Keeping the recipe a plain PyTorch object
(no Ray, no MLflow, no DeepSpeed) lets the same family run under DDP, DeepSpeed, Tune or a bare
loop in a benchmark.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar, Mapping

import torch
from torch import nn

from vton_models.representation.base import Representation

Tensor = torch.Tensor


@dataclass(frozen=True)
class NetworkSpec:
    """One trainable network of a recipe.

    ``lr_key`` names the config value that holds its learning rate (``train.lr_g`` or
    ``train.lr_d``), so that Tune can sweep it by name and PBT can re-apply it after an exploit.
    ``role`` decides which phase steps it: generators in the G phase, discriminators in the D phase.
    """

    name: str
    role: str  # "generator" | "discriminator"
    lr_key: str


@dataclass
class RecipeContext:
    """What a recipe is built from: the resolved ``model`` section, loss weights and image size."""

    image_size: tuple[int, int]  # (height, width)
    model: Mapping[str, Any] = field(default_factory=dict)
    loss_weights: Mapping[str, float] = field(default_factory=dict)
    gan_mode: str = "lsgan"


class Recipe(ABC):
    """A model family at one training stage.

    Subclasses declare ``name``, ``networks``, ``default_loss_weights`` and ``representation``
    (the family's input builder, an object from its ``inputs.py``, that makes their batch fields),
    and implement the four methods below. Loss terms are returned *unweighted* and *named*; the
    loop multiplies each by ``self.loss_weights[name]`` so every weight is a config value.
    """

    name: ClassVar[str]
    networks: ClassVar[tuple[NetworkSpec, ...]]
    default_loss_weights: ClassVar[dict[str, float]]
    representation: ClassVar[Representation]
    #: Batch fields (from the loader) this recipe reads, with their channel counts.
    batch_fields: ClassVar[dict[str, int]]
    #: Earlier stages this one consumes as frozen networks: ``model.<key>`` option -> the recipe that
    #: must have produced the registered model named there.
    consumes: ClassVar[dict[str, str]] = {}
    #: Every ``model.*`` option the family understands (besides ``recipe``), with its default.
    default_model_options: ClassVar[dict[str, Any]] = {}

    def __init__(self, context: RecipeContext) -> None:
        unknown = set(context.loss_weights) - set(self.default_loss_weights)
        if unknown:
            raise ValueError(
                f"loss.weights: unknown term(s) {sorted(unknown)} for recipe '{self.name}'; "
                f"allowed: {sorted(self.default_loss_weights)}"
            )
        unknown_options = set(context.model) - set(self.default_model_options)
        if unknown_options:
            raise ValueError(
                f"model: unknown option(s) {sorted(unknown_options)} for recipe '{self.name}'; "
                f"allowed: {sorted(self.default_model_options)}"
            )
        self.context = context
        self.model_options: dict[str, Any] = {**self.default_model_options, **context.model}
        self.loss_weights: dict[str, float] = {**self.default_loss_weights, **context.loss_weights}

    @abstractmethod
    def build_networks(self) -> dict[str, nn.Module]:
        """Fresh networks, keyed by the names in ``networks``."""

    @abstractmethod
    def inputs(self, batch: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """Cheap tensor assembly on the training device (concatenation only, no decoding)."""

    @abstractmethod
    def d_losses(self, nets: Mapping[str, nn.Module], inputs: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """Discriminator terms (e.g. ``d_real``, ``d_fake``, ``gp``); G is run under no_grad."""

    @abstractmethod
    def g_losses(
        self, nets: Mapping[str, nn.Module], inputs: Mapping[str, Tensor]
    ) -> tuple[dict[str, Tensor], Tensor]:
        """Generator terms and the generated image; D is frozen by the loop before this call."""

    @abstractmethod
    def generate(self, nets: Mapping[str, nn.Module], inputs: Mapping[str, Tensor]) -> Tensor:
        """The try-on image in [-1, 1], for evaluation, sample grids and inference."""

    def target(self, inputs: Mapping[str, Tensor]) -> Tensor:
        """The ground-truth image paired metrics compare ``generate`` against."""
        return inputs["person"]

    def attach_stage(self, key: str, stage: "Recipe", network: nn.Module) -> None:
        """Receive an earlier stage named in ``consumes`` (its recipe and its trained network, frozen).

        The orchestrator loads it from the model registry (``model.<key>``); recipes never read files.
        """
        raise ValueError(f"recipe '{self.name}' consumes no earlier stage '{key}' (it consumes {sorted(self.consumes)})")

    def validation_metrics(self, nets: Mapping[str, nn.Module], inputs: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """Held-out metrics beyond the image ones, one value per image (the validator averages them
        across ranks). Image metrics of ``generate`` vs ``target`` are always computed; a stage whose
        output is not judged as an image (a parse map) adds what it is judged by."""
        return {}

    def sample_panels(self, inputs: Mapping[str, Tensor], generated: Tensor) -> list[Tensor]:
        """Columns of the logged sample grid: agnostic person | cloth | generated | ground truth."""
        return [inputs["agnostic"], inputs["cloth"], generated, inputs["person"]]

    def weighted_sum(self, terms: Mapping[str, Tensor]) -> Tensor:
        """The scalar a strategy backpropagates: every named term times its configured weight."""
        missing = [k for k in terms if k not in self.loss_weights]
        if missing:
            raise KeyError(f"recipe '{self.name}' returned loss term(s) {missing} with no weight")
        return sum(self.loss_weights[k] * v for k, v in terms.items())  # type: ignore[return-value]
