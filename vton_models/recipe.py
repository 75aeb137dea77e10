"""The recipe interface: everything the generic trainer needs to know about one stage of a family.

The trainer (``orchestrator/train/loop.py``) knows nothing about try-on. A recipe declares its
networks (each with a role and its own optimizer defaults) and its *phases* as data, StyleGAN3
style: an ordered list of (name, networks stepped, loss method, interval). Per micro-batch the
trainer calls ``inputs`` once, then each phase's loss method; it weights the returned terms with
``loss_weights`` and lets the strategy do backward / step / accumulation / precision for the
networks of that phase; every other network is frozen during it. Keeping the recipe a plain
PyTorch object (no Ray, no MLflow, no DeepSpeed) lets the same family run under DDP, DeepSpeed,
Tune or a bare loop in a benchmark.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, Mapping, Sequence, TypeVar, Union

import torch
from torch import nn

from vton_models.representation.base import Representation

Tensor = torch.Tensor
Generated = TypeVar("Generated")

ROLES = ("generator", "discriminator")
OPTIMIZERS = ("adam", "adamw")


def int_option(options: Mapping[str, Any], key: str, minimum: int = 1) -> int:
    """``model.<key>`` as an integer >= ``minimum`` (YAML's ``true`` is not a 1)."""
    value = options[key]
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"model.{key}: expected an integer >= {minimum}, got {value!r}")
    return value


def choice_option(options: Mapping[str, Any], key: str, allowed: Sequence[str]) -> str:
    """``model.<key>`` as one of ``allowed``."""
    if options[key] not in allowed:
        raise ValueError(f"model.{key}: {options[key]!r} is not one of {list(allowed)}")
    return options[key]


def bool_option(options: Mapping[str, Any], key: str) -> bool:
    """``model.<key>`` as true or false (not a string or a number that happens to be truthy)."""
    if not isinstance(options[key], bool):
        raise ValueError(f"model.{key}: expected true or false, got {options[key]!r}")
    return options[key]


@dataclass(frozen=True)
class OptimizerSpec:
    """A network's optimizer as its paper trains it; every field can be overridden from the config
    (``train.optimizer|lr|betas|weight_decay|schedule.<network>``, see ``orchestrator.train.optim``).

    ``None`` means "not stated by the recipe": the config's shorthand (``train.lr_g`` / ``train.lr_d``
    by role, ``train.betas``) or the project default applies. ``weight_decay`` is Adam's L2 term for
    ``adam`` and the decoupled decay for ``adamw``. ``schedule``: ``constant``, ``plateau``
    (ReduceLROnPlateau on the held-out L1) or ``linear_decay(KEEP, DECAY)`` (constant for KEEP steps,
    then linearly to zero over DECAY steps, CP-VTON's 100k + 100k).
    """

    type: str = "adam"
    lr: float | None = None
    betas: tuple[float, float] | None = None
    weight_decay: float = 0.0
    schedule: str | None = None


@dataclass(frozen=True)
class NetworkSpec:
    """One trainable network of a recipe. ``role`` (generator | discriminator) decides the defaults
    it shares with its kind (``train.lr_g`` / ``train.lr_d``, EMA for generators, what a registered
    model serves for generation) and how it behaves while frozen (see ``Phase``)."""

    name: str
    role: str  # "generator" | "discriminator"
    optimizer: OptimizerSpec = field(default_factory=OptimizerSpec)

    def __post_init__(self) -> None:
        if self.role not in ROLES:
            raise ValueError(f"network {self.name!r}: role {self.role!r} is not one of {ROLES}")
        if self.optimizer.type not in OPTIMIZERS:
            raise ValueError(f"network {self.name!r}: optimizer {self.optimizer.type!r} is not one of {OPTIMIZERS}")


@dataclass(frozen=True)
class Phase:
    """One optimisation phase of a training step: the networks it steps and the loss that steps them.

    ``losses`` names the recipe method computing the phase's terms, ``(nets, inputs) -> terms`` or
    ``(terms, image)`` (the image is what sample grids show). ``every``: the phase runs on optimizer
    steps ``step % every == 0``. A phase whose networks are all discriminators runs
    ``train.d_steps_per_g`` rounds (each on fresh micro-batches) per step; the other phases run in
    the last round. Within a micro-batch phases run in the declared order, and each network is
    stepped once at the end of every round its phase ran in.

    While a phase runs, every network it does not step is frozen: no gradients into its parameters.
    A frozen discriminator's spectral-norm power iteration is paused too (it advances once per own
    optimizer step, on the first micro-batch); a generator's advances on every training forward,
    as in SPADE/VITON-HD, whose D step generates its fakes with G in training mode.
    """

    name: str
    networks: tuple[str, ...]
    losses: str
    every: int = 1

    def __post_init__(self) -> None:
        if not self.networks:
            raise ValueError(f"phase {self.name!r} steps no network")
        if self.every < 1:
            raise ValueError(f"phase {self.name!r}: every must be >= 1, got {self.every}")


#: What a phase's loss method returns: named unweighted terms, optionally with the generated image.
PhaseLosses = Union[dict[str, Tensor], tuple[dict[str, Tensor], Tensor]]


@dataclass
class RecipeContext:
    """What a recipe is built from: the resolved ``model`` section, loss weights and image size."""

    image_size: tuple[int, int]  # (height, width)
    model: Mapping[str, Any] = field(default_factory=dict)
    loss_weights: Mapping[str, float] = field(default_factory=dict)
    gan_mode: str = "lsgan"


class Recipe(ABC):
    """A model family at one training stage.

    Subclasses declare ``name``, ``networks``, ``phases``, ``default_loss_weights`` and
    ``representation`` (the family's input builder, an object from its ``inputs.py``, that makes
    their batch fields), and implement the methods below plus each phase's loss method. Loss terms
    are returned *unweighted* and *named*; the trainer multiplies each by
    ``self.loss_weights[name]`` so every weight is a config value.
    """

    name: ClassVar[str]
    networks: ClassVar[tuple[NetworkSpec, ...]]
    phases: ClassVar[tuple[Phase, ...]]
    default_loss_weights: ClassVar[dict[str, float]]
    representation: ClassVar[Representation]
    #: Batch fields (from the loader) this recipe reads, with their channel counts.
    batch_fields: ClassVar[dict[str, int]]
    #: Earlier stages this one consumes as frozen networks: ``model.<key>`` option -> the recipe that
    #: must have produced the registered model named there.
    consumes: ClassVar[dict[str, str]] = {}
    #: Networks this stage starts from an earlier stage's registered weights and keeps training
    #: (``model.init.<network>``): network -> ``"<recipe>"`` or ``"<recipe>#<its network>"`` (default:
    #: the same name). ``vton pipeline`` orders and wires stages by it; preflight checks the kind. Any
    #: network may also be warm-started from any stage holding a network of the same shapes.
    initializes: ClassVar[dict[str, str]] = {}
    #: Every ``model.*`` option the family understands (besides ``recipe``), with its default.
    default_model_options: ClassVar[dict[str, Any]] = {}
    #: Whether ``generate`` is a try-on picture (the person in the given garment). A stage whose
    #: output is an intermediate (a parse, a warped garment) is evaluated as such but cannot serve
    #: ``vton tryon``.
    tries_on: ClassVar[bool] = True
    #: A recipe that chains a family's registered stages for try-on and evaluation: no phases, never
    #: trained (``Family.chain``); ``chains`` maps each of its networks to the recipe of the stage
    #: whose generator it is a copy of.
    inference_only: ClassVar[bool] = False
    chains: ClassVar[dict[str, str]] = {}
    #: Options whose values change a network's inputs (e.g. unet_sa's ``garment_input``);
    #: ``vton models summary`` builds and reports every value.
    input_variants: ClassVar[dict[str, tuple[str, ...]]] = {}
    #: Seed of the training micro-batch being computed: set by the trainer before ``inputs`` from
    #: (``train.seed``, step, rank, micro-batch), None outside training (evaluation, try-on). What a
    #: recipe draws at random while training comes from ``training_generator``, so a resumed run
    #: draws exactly what the uninterrupted one drew, whatever else consumed torch's global RNG.
    training_seed: int | None = None
    #: ``train.reuse_fakes``, set by the trainer: the generator phases run first and what they keep
    #: (``keep_for_discriminator``) is what the discriminator phase of the same micro-batch judges.
    reuse_fakes: bool = False
    _kept: tuple[int, Any] | None = None

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
    def generate(self, nets: Mapping[str, nn.Module], inputs: Mapping[str, Tensor]) -> Tensor:
        """The try-on image in [-1, 1], for evaluation, sample grids and inference."""

    def training_generator(self) -> torch.Generator | None:
        """A CPU generator seeded for this training micro-batch (the same one on every call within
        it, so a D phase and a G phase see the same draws), or None outside training."""
        if self.training_seed is None:
            return None
        return torch.Generator().manual_seed(self.training_seed)

    def keep_for_discriminator(self, generated: Generated) -> Generated:
        """A generator phase's fakes (a tensor or a tuple / dict of them), kept detached for the
        discriminator phase of this micro-batch when the trainer shares them (``train.reuse_fakes``);
        returned unchanged, so the call wraps the expression that generated them."""
        if self.reuse_fakes and self.training_seed is not None:
            self._kept = (self.training_seed, _detached(generated))
        return generated

    def fakes_for_discriminator(self, generate: Callable[[], Generated]) -> Generated:
        """What the generator phase of this micro-batch kept, or else ``generate()`` without a graph
        (the default order, a discriminator round without a generator phase, evaluation). Must be
        given what the generator phase passes to ``keep_for_discriminator``."""
        kept, self._kept = self._kept, None  # used once: a later micro-batch never sees it
        if kept is not None and self.training_seed is not None and kept[0] == self.training_seed:
            return kept[1]
        with torch.no_grad():
            return generate()

    def checked_fields(self, batch: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """``batch_fields`` taken from a batch, each checked to be (B, channels, H, W); a missing or
        misshapen field is an error naming it and the representation that should have made it."""
        out: dict[str, Tensor] = {}
        for name, channels in self.batch_fields.items():
            if name not in batch:
                raise KeyError(f"recipe '{self.name}': batch has no field '{name}' (needs {sorted(self.batch_fields)}); "
                               f"was it built with representation '{self.representation.name}'?")
            tensor = batch[name]
            if tensor.dim() != 4 or tensor.shape[1] != channels:
                raise ValueError(f"recipe '{self.name}': batch field '{name}' must be (B, {channels}, H, W), "
                                 f"got {tuple(tensor.shape)}")
            out[name] = tensor
        return out

    def target(self, inputs: Mapping[str, Tensor]) -> Tensor:
        """The ground-truth image paired metrics compare ``generate`` against."""
        return inputs["person"]

    def attach_stage(self, key: str, stage: "Recipe", networks: Mapping[str, nn.Module]) -> None:
        """Receive an earlier stage named in ``consumes``: its recipe and its generators (frozen, by name).

        The orchestrator loads it from the model registry (``model.<key>``); recipes never read files.
        """
        raise ValueError(f"recipe '{self.name}' consumes no earlier stage '{key}' (it consumes {sorted(self.consumes)})")

    @property
    def reads_cloth_mask(self) -> bool:
        """Whether the networks see the garment's mask, so that ``vton tryon`` requires a real one
        (besides representations that read it, see ``Representation.reads``)."""
        return False

    def required_stages(self) -> dict[str, str]:
        """Consumed stages (keys of ``consumes``) this configuration cannot run without, each with why;
        preflight refuses a config that leaves one unset (``vton pipeline`` fills them first)."""
        return {}

    def teacher_forcing(self) -> str | None:
        """What ground truth ``generate`` reads in place of upstream predictions (teacher forcing), or
        None when it uses only what a user provides. A teacher-forced stage trains well that way, but
        its images are not try-ons: ``vton tryon`` refuses it and ``vton eval`` labels its numbers;
        the run records it as the tag ``vton.teacher_forcing``."""
        return None

    def required_weights(self) -> tuple[str, ...]:
        """Pretrained files (``vton_models.weights`` names) this stage's losses load with the
        configured weights, e.g. ``("vgg19",)`` for a perceptual term; checked before a run starts."""
        return ()

    def validation_metrics(self, nets: Mapping[str, nn.Module], inputs: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """Held-out metrics beyond the image ones, one value per image (the validator averages them
        across ranks). Image metrics of ``generate`` vs ``target`` are always computed; a stage whose
        output is not judged as an image (a parse map) adds what it is judged by."""
        return {}

    def sample_panels(self, inputs: Mapping[str, Tensor], generated: Tensor) -> dict[str, Tensor]:
        """Columns of the logged sample grids, label -> (B, C, H, W) in [-1, 1], in order."""
        return {"agnostic": inputs["agnostic"], "cloth": inputs["cloth"], "generated": generated,
                "ground truth": inputs["person"]}

    def weighted_sum(self, terms: Mapping[str, Tensor]) -> Tensor:
        """The scalar a strategy backpropagates: every named term times its configured weight."""
        missing = [k for k in terms if k not in self.loss_weights]
        if missing:
            raise KeyError(f"recipe '{self.name}' returned loss term(s) {missing} with no weight")
        return sum(self.loss_weights[k] * v for k, v in terms.items())  # type: ignore[return-value]

    # -- definition checks -----------------------------------------------------------------------

    @classmethod
    def check_definition(cls) -> None:
        """The declared networks and phases fit together (run when the recipe is registered):
        every network has a unique name and is stepped by exactly one phase, and every phase's loss
        method exists. A typo here would otherwise surface as a network that silently never trains."""
        names = [spec.name for spec in cls.networks]
        if len(set(names)) != len(names):
            raise ValueError(f"recipe {cls.name!r}: duplicate network names {names}")
        if cls.inference_only:
            if cls.phases:
                raise ValueError(f"recipe {cls.name!r}: an inference-only recipe has no phases")
            return
        stepped: dict[str, str] = {}
        for phase in cls.phases:
            if not callable(getattr(cls, phase.losses, None)):
                raise ValueError(f"recipe {cls.name!r}: phase {phase.name!r} names loss method {phase.losses!r}, "
                                 "which the recipe does not define")
            for net in phase.networks:
                if net not in names:
                    raise ValueError(f"recipe {cls.name!r}: phase {phase.name!r} steps unknown network {net!r} "
                                     f"(networks: {names})")
                if net in stepped:
                    raise ValueError(f"recipe {cls.name!r}: network {net!r} is stepped by phases "
                                     f"{stepped[net]!r} and {phase.name!r}; a network belongs to one phase")
                stepped[net] = phase.name
        idle = [n for n in names if n not in stepped]
        if idle:
            raise ValueError(f"recipe {cls.name!r}: network(s) {idle} are stepped by no phase")
        if len({p.name for p in cls.phases}) != len(cls.phases):
            raise ValueError(f"recipe {cls.name!r}: duplicate phase names {[p.name for p in cls.phases]}")

    def spec(self, name: str) -> NetworkSpec:
        return next(s for s in self.networks if s.name == name)

    def generator_names(self) -> list[str]:
        """The generator-role networks, in declaration order: what ``generate`` runs."""
        return [s.name for s in self.networks if s.role == "generator"]


def _detached(value: Any) -> Any:
    """``value`` with every tensor in it (nested tuples, lists, dicts) detached from its graph."""
    if isinstance(value, Tensor):
        return value.detach()
    if isinstance(value, dict):
        return {key: _detached(item) for key, item in value.items()}
    if isinstance(value, (tuple, list)):
        return type(value)(_detached(item) for item in value)
    return value
