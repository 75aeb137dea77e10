"""Recipes of seed 003 (``cpvton_aux``): CP-VTON's two stages, each with the paper's auxiliary task of
predicting the expected human segmentation (the person wearing the try-on garment).

* ``cpvton_aux.gmm``: ``GMMAux`` warps the in-shop garment onto the person from CP-VTON's 22-channel
  representation. Terms: ``l1`` between the warp (garment sampled with border padding) and the worn
  garment on white; ``aux_ce`` the class-weighted cross-entropy of the head's parse against the
  person's LIP labels; optional ``gic`` (second-order smoothness of the control points, weight 0: the
  paper does not use it; CP-VTON+ does).
* ``cpvton_aux.tom``: the U-Net renders a person and a composition mask from [representation, warped
  garment]; ``try-on = warped * m + rendered * (1 - m)``. Terms: ``l1`` and ``vgg`` (VGG19 relu1-5,
  1/32 .. 1) against the person, ``mask`` (L1 of m to the warped garment mask, as CP-VTON's code; its
  paper writes |1 - m|, ``model.mask_target=ones``), ``aux_ce``. It consumes a registered
  ``cpvton_aux.gmm`` stage frozen (``model.gmm``, required): CP-VTON trains TOM on the trained GMM's
  warps, so neither stage reads ground truth at inference, and TOM's output is a try-on.

``model.aux: false`` in a stage gives plain CP-VTON there (the paper's baseline rows). The paper
gives no auxiliary loss weight, class weights or decoder design; ours (documented choices): weight
1.0, background and skin (face, arms, legs) weighted 3.0 over 20 LIP classes, decoders as in
``networks.py``. Optimiser as CP-VTON's ``train.py``: Adam 1e-4, betas (0.5, 0.999), 100k steps
constant then 100k of linear decay to zero.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn

from vton_models.families.cpvton_aux.networks import GMMAux, TOMGenerator
from vton_models.gan import LazyPerceptual
from vton_models.losses import PIX2PIXHD_VGG_WEIGHTS, l1_loss, second_order_constraint, weighted_cross_entropy
from vton_models.metrics.parse import parse_scores
from vton_models.networks.gmm import sample_garment
from vton_models.recipe import NetworkSpec, OptimizerSpec, Phase, Recipe, RecipeContext, int_option
from vton_models.representation.base import Representation
from vton_models.representation.cpvton import CPVTON
from vton_models.representation.parse import LIP_LABELS, NUM_LIP_LABELS, label_lut

Tensor = torch.Tensor

#: CP-VTON's train.py: Adam 1e-4, betas (0.5, 0.999), keep 100k steps then decay linearly over 100k.
CPVTON_OPTIMIZER = OptimizerSpec(lr=1e-4, betas=(0.5, 0.999), schedule="linear_decay(100000,100000)")


@dataclass(frozen=True)
class AuxClassSet:
    """What the auxiliary head predicts: groups of LIP labels, and which groups are skin.

    The paper weights "skin and background" up in its cross-entropy (no numbers); which classes are
    skin depends on the label set, so the weights are given per role (``aux_background_weight``,
    ``aux_skin_weight``: scalars, so sweeps can draw them) and then per label (``aux_class_weights``).
    """

    groups: tuple[tuple[str, tuple[int, ...]], ...]
    skin: tuple[str, ...]

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.groups)

    def lookup(self) -> Tensor:
        """LIP label -> class index, as an int64 table to index a parse map with."""
        return torch.from_numpy(label_lut(self.groups, NUM_LIP_LABELS).astype("int64"))


#: The LIP parser's 20 labels as they are (the paper's pseudo ground truth); skin: face, arms, legs.
LIP20 = AuxClassSet(tuple((name, (label,)) for label, name in enumerate(LIP_LABELS)),
                    ("face", "left_arm", "right_arm", "left_leg", "right_leg"))
#: Our coarser choice for small data: 7 body regions (the try-on cares about garment/skin bounds, not
#: left vs right shoe). Gloves go with the arms, socks and shoes with the legs, sunglasses with the face,
#: jumpsuit and scarf with the upper garment.
GROUPED7 = AuxClassSet(
    (("background", (0,)), ("hair", (1, 2)), ("face", (4, 13)), ("upper", (5, 6, 7, 10, 11)),
     ("lower", (9, 12)), ("arms", (3, 14, 15)), ("legs", (8, 16, 17, 18, 19))),
    ("face", "arms", "legs"))
AUX_CLASSES: dict[str, AuxClassSet] = {"lip20": LIP20, "grouped7": GROUPED7}


def _is_positive_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0


class _CPVTONRecipe(Recipe):
    representation: ClassVar[Representation] = CPVTON
    networks: ClassVar[tuple[NetworkSpec, ...]] = (NetworkSpec("G", "generator", CPVTON_OPTIMIZER),)
    #: No discriminator in CP-VTON: one phase, G only.
    phases: ClassVar[tuple[Phase, ...]] = (Phase("G", ("G",), "g_losses"),)
    batch_fields: ClassVar[dict[str, int]] = {
        "agnostic": 22, "cloth": 3, "cloth_mask": 1, "person": 3, "parse_cloth_rgb": 3, "pcm": 1}
    _common_options: ClassVar[dict[str, Any]] = {
        "ngf": 64,
        "aux": True,                    # the auxiliary segmentation head (false: plain CP-VTON)
        "aux_classes": "lip20",         # what the head predicts: lip20 (the LIP parser's labels) | grouped7
        # Cross-entropy class weights (our choice: the paper weights skin and background up, no numbers):
        "aux_background_weight": 3.0,   # class 0
        "aux_skin_weight": 3.0,         # the set's skin classes (face, arms, legs)
        "aux_class_weights": {},        # {class index: weight}, over the two above; the rest weigh 1.0
        "align_corners": False,         # grid sampling; true reproduces CP-VTON's (PyTorch < 1.3) warps
    }

    def __init__(self, context: RecipeContext) -> None:
        super().__init__(context)
        opts = self.model_options
        int_option(opts, "ngf")
        for key in ("aux", "align_corners"):
            if not isinstance(opts[key], bool):
                raise ValueError(f"model.{key}: expected true or false, got {opts[key]!r}")
        if opts["aux_classes"] not in AUX_CLASSES:
            raise ValueError(f"model.aux_classes: {opts['aux_classes']!r} is not one of {sorted(AUX_CLASSES)}")
        self.aux_classes = AUX_CLASSES[opts["aux_classes"]]
        self.num_aux = len(self.aux_classes.groups) if opts["aux"] else 0
        self.aux_lookup = self.aux_classes.lookup()
        self.class_weights = self._class_weights()

    def _class_weights(self) -> Tensor:
        opts, names = self.model_options, self.aux_classes.names
        weights = torch.ones(len(names))
        for key in ("aux_background_weight", "aux_skin_weight"):
            if not _is_positive_number(opts[key]):
                raise ValueError(f"model.{key}: expected a number > 0, got {opts[key]!r}")
        weights[0] = float(opts["aux_background_weight"])
        weights[[names.index(n) for n in self.aux_classes.skin]] = float(opts["aux_skin_weight"])
        given = opts["aux_class_weights"]
        if not isinstance(given, Mapping):
            raise ValueError(f"model.aux_class_weights: expected {{class index: weight}}, got {given!r}")
        for label, weight in given.items():
            index = int(label) if str(label).lstrip("-").isdigit() else -1
            if not 0 <= index < len(weights) or not _is_positive_number(weight):
                raise ValueError(f"model.aux_class_weights: {label}: {weight!r} must be a class index in "
                                 f"[0, {len(weights) - 1}] of aux_classes={opts['aux_classes']} "
                                 f"({', '.join(f'{i} {n}' for i, n in enumerate(names))}) with a weight > 0")
            weights[index] = float(weight)
        return weights

    def aux_target(self, parse: Tensor) -> Tensor:
        """The person's LIP parse as the head's classes."""
        return self.aux_lookup.to(parse.device)[parse]

    def _fields(self, batch: Mapping[str, Tensor]) -> dict[str, Tensor]:
        return {**self.checked_fields(batch), "parse": batch["parse"]}

    def aux_terms(self, logits: Tensor | None, inputs: Mapping[str, Tensor]) -> dict[str, Tensor]:
        if logits is None:
            return {}
        return {"aux_ce": weighted_cross_entropy(logits, self.aux_target(inputs["parse"]), self.class_weights)}

    def aux_scores(self, logits: Tensor | None, inputs: Mapping[str, Tensor]) -> dict[str, Tensor]:
        if logits is None:
            return {}
        scores = parse_scores(logits.argmax(1), self.aux_target(inputs["parse"]), self.num_aux)
        return {f"aux_{name}": value for name, value in scores.items()}


class CPVTONGMMRecipe(_CPVTONRecipe):
    name: ClassVar[str] = "cpvton_aux.gmm"
    tries_on: ClassVar[bool] = False  # its output is the warped garment
    default_loss_weights: ClassVar[dict[str, float]] = {"l1": 1.0, "aux_ce": 1.0, "gic": 0.0}
    default_model_options: ClassVar[dict[str, Any]] = {**_CPVTONRecipe._common_options, "grid_size": 5}

    def __init__(self, context: RecipeContext) -> None:
        super().__init__(context)
        grid = self.model_options["grid_size"]
        if isinstance(grid, bool) or not isinstance(grid, int) or grid < 2:
            raise ValueError(f"model.grid_size: expected an integer >= 2, got {grid!r}")
        h, w = context.image_size
        if h % 16 or w % 16 or h < 64 or w < 64:
            raise ValueError(f"recipe 'cpvton_aux.gmm': image_size {(h, w)} must be divisible by 16 and at least 64x64")

    def build_networks(self) -> dict[str, nn.Module]:
        o = self.model_options
        return {"G": GMMAux(tuple(self.context.image_size), o["grid_size"], o["ngf"], self.num_aux)}

    def inputs(self, batch: Mapping[str, Tensor]) -> dict[str, Tensor]:
        return self._fields(batch)

    def warp(self, gmm: nn.Module, inputs: Mapping[str, Tensor]) -> tuple[Tensor, Tensor, Tensor, Tensor | None]:
        """(theta, warped garment (border padding), warped mask (zero padding), aux logits)."""
        theta, grid, logits = gmm(inputs["agnostic"], inputs["cloth"])
        warped, warped_mask = sample_garment(inputs["cloth"], inputs["cloth_mask"], grid,
                                             self.model_options["align_corners"])
        return theta, warped, warped_mask, logits

    def g_losses(self, nets: Mapping[str, nn.Module], inputs: Mapping[str, Tensor]) -> tuple[dict[str, Tensor], Tensor]:
        theta, warped, _, logits = self.warp(nets["G"], inputs)
        terms = {"l1": l1_loss(warped, inputs["parse_cloth_rgb"]), **self.aux_terms(logits, inputs)}
        if self.loss_weights["gic"] != 0:
            terms["gic"] = second_order_constraint(theta, self.model_options["grid_size"])
        return terms, warped.detach()

    def generate(self, nets: Mapping[str, nn.Module], inputs: Mapping[str, Tensor]) -> Tensor:
        return self.warp(nets["G"], inputs)[1]

    def target(self, inputs: Mapping[str, Tensor]) -> Tensor:
        return inputs["parse_cloth_rgb"]

    def validation_metrics(self, nets: Mapping[str, nn.Module], inputs: Mapping[str, Tensor]) -> dict[str, Tensor]:
        return self.aux_scores(self.warp(nets["G"], inputs)[3], inputs)

    def sample_panels(self, inputs: Mapping[str, Tensor], generated: Tensor) -> dict[str, Tensor]:
        return {"person": inputs["person"], "cloth": inputs["cloth"], "warped cloth": generated,
                "worn cloth (truth)": inputs["parse_cloth_rgb"]}


class CPVTONTOMRecipe(_CPVTONRecipe):
    name: ClassVar[str] = "cpvton_aux.tom"
    default_loss_weights: ClassVar[dict[str, float]] = {"l1": 1.0, "vgg": 1.0, "mask": 1.0, "aux_ce": 1.0}
    default_model_options: ClassVar[dict[str, Any]] = {
        **_CPVTONRecipe._common_options,
        "aux_skips": True,              # the auxiliary decoder reads the encoder's skips (a Y-Net)
        "mask_target": "warped_mask",   # warped_mask (CP-VTON's code) | ones (its paper's |1 - M|)
        "gmm": None,                    # models:/... of a registered cpvton_aux.gmm stage (required)
    }
    consumes: ClassVar[dict[str, str]] = {"gmm": "cpvton_aux.gmm"}

    def __init__(self, context: RecipeContext) -> None:
        super().__init__(context)
        opts = self.model_options
        if not isinstance(opts["aux_skips"], bool):
            raise ValueError(f"model.aux_skips: expected true or false, got {opts['aux_skips']!r}")
        if opts["mask_target"] not in ("warped_mask", "ones"):
            raise ValueError(f"model.mask_target: {opts['mask_target']!r} is not one of ['ones', 'warped_mask']")
        h, w = context.image_size
        if h % 64 or w % 64:
            raise ValueError(f"recipe 'cpvton_aux.tom': image_size {(h, w)} must be divisible by 64 (six downsamplings)")
        self.perceptual = LazyPerceptual(PIX2PIXHD_VGG_WEIGHTS)
        self.frozen_gmm: tuple[CPVTONGMMRecipe, nn.Module] | None = None

    def required_stages(self) -> dict[str, str]:
        return {"gmm": "TOM renders on the warps of a registered cpvton_aux.gmm stage, as CP-VTON trains it"}

    def attach_stage(self, key: str, stage: Recipe, networks: Mapping[str, nn.Module]) -> None:
        if key != "gmm" or not isinstance(stage, CPVTONGMMRecipe):
            raise ValueError(f"recipe 'cpvton_aux.tom': model.{key} must be a registered 'cpvton_aux.gmm' model, "
                             f"got a '{stage.name}' model")
        self.frozen_gmm = (stage, networks["G"].eval().requires_grad_(False))

    def required_weights(self) -> tuple[str, ...]:
        return ("vgg19",) if self.loss_weights["vgg"] != 0 else ()

    def build_networks(self) -> dict[str, nn.Module]:
        o = self.model_options
        return {"G": TOMGenerator(22 + 3, 4, o["ngf"], self.num_aux, o["aux_skips"])}

    def inputs(self, batch: Mapping[str, Tensor]) -> dict[str, Tensor]:
        if self.frozen_gmm is None:
            raise ValueError("recipe 'cpvton_aux.tom' needs model.gmm (models:/... of a registered cpvton_aux.gmm "
                             "stage); none is attached")
        x = self._fields(batch)
        recipe, gmm = self.frozen_gmm
        with torch.no_grad():
            _, warped, warped_mask, _ = recipe.warp(gmm.to(x["cloth"].device), x)
        x["warped"], x["warped_mask"] = warped, warped_mask
        x["tom_input"] = torch.cat([x["agnostic"], warped], 1)
        return x

    def render(self, G: nn.Module, inputs: Mapping[str, Tensor]) -> tuple[Tensor, Tensor, Tensor, Tensor | None]:
        """(try-on, rendered person, composition mask, aux logits)."""
        out, logits = G(inputs["tom_input"])
        rendered, mask = torch.tanh(out[:, :3]), torch.sigmoid(out[:, 3:4])
        return inputs["warped"] * mask + rendered * (1 - mask), rendered, mask, logits

    def g_losses(self, nets: Mapping[str, nn.Module], inputs: Mapping[str, Tensor]) -> tuple[dict[str, Tensor], Tensor]:
        tryon, _, mask, logits = self.render(nets["G"], inputs)
        person = inputs["person"]
        target = inputs["warped_mask"] if self.model_options["mask_target"] == "warped_mask" else torch.ones_like(mask)
        terms = {"l1": l1_loss(tryon, person), "mask": l1_loss(mask, target), **self.aux_terms(logits, inputs)}
        if self.loss_weights["vgg"] != 0:
            terms["vgg"] = self.perceptual(tryon, person)
        return terms, tryon.detach()

    def generate(self, nets: Mapping[str, nn.Module], inputs: Mapping[str, Tensor]) -> Tensor:
        return self.render(nets["G"], inputs)[0]

    def validation_metrics(self, nets: Mapping[str, nn.Module], inputs: Mapping[str, Tensor]) -> dict[str, Tensor]:
        return self.aux_scores(self.render(nets["G"], inputs)[3], inputs)

    def sample_panels(self, inputs: Mapping[str, Tensor], generated: Tensor) -> dict[str, Tensor]:
        return {"head (agnostic)": inputs["agnostic"][:, 1:4], "cloth": inputs["cloth"], "warped cloth": inputs["warped"],
                "generated": generated, "ground truth": inputs["person"]}
