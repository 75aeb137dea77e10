"""Recipes of seed 002 (``tree_block``, "Down to the last detail", Wang et al., ICME 2020): multi-pose
try-on, "person A wearing cloth C, in B's pose", from MPV triplets (representation ``multipose``).

Algorithm 1 of the paper, one recipe per step, each its own Ray job and registered model:

* ``tree_block.parse``: the parse net P predicts B's parse from [A's parse, cloth mask, B's pose].
  Terms ``ce`` (on the logits) and LSGAN ``adv`` through D_P on [condition; parse] (D sees the
  softmax for a fake, the one-hot for a real), ``d_real``, ``d_fake``.
* ``tree_block.gmm``: the GMM warps the cloth to B from [B's shape, B's garment region, B's pose].
  Trained teacher-forced on B's ground-truth parse (the paper trains P and the GMM independently);
  every later stage feeds it P's soft parse through the same (differentiable) function. Term ``l1``
  between the warp composited on white and B's garment on white; optional ``gic``.
* ``tree_block.app``: the appearance generator (Tree-Blocks) renders B from [A without its garment,
  P's soft parse, the GMM's warp] as a coarse image and a composition mask M; ``try-on = warp * M +
  render * (1 - M)``. Eq. 8: ``pixel`` (smooth-L1), ``feat`` and ``style`` (VGG19 relu1_2 features
  and their Gram matrices), ``atten`` (|M - warped cloth mask|: the paper's M_c is the in-shop
  mask, in another space; FAMILIES.md §2.1), ``tv`` (smoothness of M), LSGAN ``adv`` through D_A on
  [A; image]. It consumes registered parse and gmm stages, frozen, so it reads no ground truth at
  inference: its output is a try-on.

The paper gives no loss weights; ours start from FAMILIES.md §2.4's and are checked at
initialisation: no weighted G term exceeds 10x the adversarial term (which moved ``ce`` 10 -> 2.5
and ``pixel`` 100 -> 50; tests/test_tree_block.py).
Adam 2e-4 for every network, betas (0.5, 0.999), constant (the paper's).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from vton_models.families.tree_block import networks
from vton_models.gan import ConditionalGAN, LazyLossNetwork
from vton_models.layers.tree_block import check_dilations
from vton_models.losses import (
    VGGFeatureStyleLoss,
    l1_loss,
    second_order_constraint,
    smooth_l1_loss,
    total_variation,
)
from vton_models.metrics.parse import parse_scores
from vton_models.networks.resnet_generator import BLOCKS
from vton_models.recipe import NetworkSpec, OptimizerSpec, Phase, Recipe, RecipeContext
from vton_models.representation.base import Representation
from vton_models.representation.cpvton import SHAPE_FACTOR, UPPER_GARMENT_LABELS
from vton_models.representation.multipose import MULTIPOSE
from vton_models.representation.parse import NUM_LIP_LABELS
from vton_models.visual import palette_image, pose_image

Tensor = torch.Tensor

#: The paper: Adam, lr 2e-4 for G and D, betas (0.5, 0.999).
ADAM = OptimizerSpec(lr=2e-4, betas=(0.5, 0.999), schedule="constant")
GAN_PHASES = (Phase("D", ("D",), "d_losses"), Phase("G", ("G",), "g_losses"))


def _check_int(opts: Mapping[str, Any], key: str, minimum: int = 1) -> int:
    value = opts[key]
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"model.{key}: expected an integer >= {minimum}, got {value!r}")
    return value


def _check_choice(opts: Mapping[str, Any], key: str, allowed: Sequence[str]) -> str:
    if opts[key] not in allowed:
        raise ValueError(f"model.{key}: {opts[key]!r} is not one of {list(allowed)}")
    return opts[key]


def soft_shape(foreground: Tensor, factor: int = SHAPE_FACTOR) -> Tensor:
    """CP-VTON's blurred body shape, differentiable: the (B, 1, H, W) foreground probability shrunk
    ``factor`` times (antialiased bilinear, as PIL's BILINEAR resize) and enlarged back, in [-1, 1].
    Training and inference both build it this way, from a one-hot or from P's softmax."""
    h, w = foreground.shape[-2:]
    small = F.interpolate(foreground.float(), size=(max(h // factor, 1), max(w // factor, 1)), mode="bilinear",
                          antialias=True, align_corners=False)
    return F.interpolate(small, size=(h, w), mode="bilinear", align_corners=False) * 2 - 1


def gmm_person_input(parse_probs: Tensor, pose: Tensor) -> Tensor:
    """The GMM's person input from a (B, 20, H, W) parse distribution: [shape (1 - p_background,
    blurred), garment region (p_upper + p_dress + p_coat), the target pose disks (18)]."""
    probs = parse_probs.float()
    region = probs[:, list(UPPER_GARMENT_LABELS)].sum(1, keepdim=True)
    return torch.cat([soft_shape(1 - probs[:, :1]), region, pose.float()], 1)


class _TreeBlockRecipe(Recipe):
    representation: ClassVar[Representation] = MULTIPOSE
    batch_fields: ClassVar[dict[str, int]] = {
        "src_person": 3, "src_parse_onehot": NUM_LIP_LABELS, "src_agnostic": 3, "tgt_pose": networks.POSE_CHANNELS,
        "cloth": 3, "cloth_mask": 1, "person": 3, "tgt_parse_onehot": NUM_LIP_LABELS, "tgt_cloth_region": 1,
        "tgt_cloth_rgb": 3}

    def _fields(self, batch: Mapping[str, Tensor]) -> dict[str, Tensor]:
        x = self.checked_fields(batch)
        x["parse"] = batch["parse"]
        for box in ("face_box_src", "face_box_tgt"):
            if box in batch:
                x[box] = batch[box]
        return x

    def _check_image_size(self, multiple: int, why: str) -> None:
        h, w = self.context.image_size
        if h % multiple or w % multiple or h < 64 or w < 64:
            raise ValueError(f"recipe '{self.name}': image_size {(h, w)} must be divisible by {multiple} ({why}) "
                             "and at least 64x64")

    def sample_panels(self, inputs: Mapping[str, Tensor], generated: Tensor) -> list[Tensor]:
        """source | cloth | target pose | (soft target parse) | generated | ground truth."""
        panels = [inputs["src_person"], inputs["cloth"], pose_image(inputs["tgt_pose"])]
        if "soft_parse" in inputs:
            panels.append(palette_image(inputs["soft_parse"]))
        return panels + [generated, self.target(inputs)]


# ------------------------------------------------------------------------------------ stage 1: P


class TreeBlockParseRecipe(_TreeBlockRecipe):
    name: ClassVar[str] = "tree_block.parse"
    tries_on: ClassVar[bool] = False  # its output is a parse map
    networks: ClassVar[tuple[NetworkSpec, ...]] = (NetworkSpec("G", "generator", ADAM),
                                                   NetworkSpec("D", "discriminator", ADAM))
    phases: ClassVar[tuple[Phase, ...]] = GAN_PHASES
    #: ``ce`` 2.5, not the spec's 10: at initialisation CE is ln(20) ~ 3.4 and LSGAN's G term ~ 1, so 10
    #: would make CE 30x the adversarial term (the issue's bound is 10x; tests/test_tree_block.py).
    default_loss_weights: ClassVar[dict[str, float]] = {"ce": 2.5, "adv": 1.0, "d_real": 1.0, "d_fake": 1.0}
    default_model_options: ClassVar[dict[str, Any]] = {"ngf": 64, "ndf": 64}

    def __init__(self, context: RecipeContext) -> None:
        super().__init__(context)
        for key in ("ngf", "ndf"):
            _check_int(self.model_options, key)
        self._check_image_size(64, "the U-Net's six downsamplings")
        self.gan = ConditionalGAN(context.gan_mode, condition_first=True)  # D sees [condition; parse]

    def build_networks(self) -> dict[str, nn.Module]:
        o = self.model_options
        return {"G": networks.parse_net(o["ngf"]), "D": networks.parse_discriminator(o["ndf"])}

    def inputs(self, batch: Mapping[str, Tensor]) -> dict[str, Tensor]:
        x = self._fields(batch)
        x["parse_condition"] = self.condition(x)
        return x

    @staticmethod
    def condition(x: Mapping[str, Tensor]) -> Tensor:
        """P's input (and D_P's condition): [source parse one-hot, cloth mask, target pose]."""
        return torch.cat([x["src_parse_onehot"], x["cloth_mask"], x["tgt_pose"]], 1)

    def logits(self, P: nn.Module, x: Mapping[str, Tensor]) -> Tensor:
        return P(self.condition(x))[0]

    def soft_parse(self, P: nn.Module, x: Mapping[str, Tensor]) -> Tensor:
        """P's target parse as probabilities (float32): what every later stage reads, so the joint
        stage's loss reaches P through them."""
        return torch.softmax(self.logits(P, x).float(), 1)

    def d_losses(self, nets: Mapping[str, nn.Module], inputs: Mapping[str, Tensor]) -> dict[str, Tensor]:
        with torch.no_grad():
            fake = self.soft_parse(nets["G"], inputs)
        return self.gan.d_terms(nets["D"], fake, inputs["tgt_parse_onehot"], inputs["parse_condition"])

    def g_losses(self, nets: Mapping[str, nn.Module], inputs: Mapping[str, Tensor]) -> tuple[dict[str, Tensor], Tensor]:
        logits = self.logits(nets["G"], inputs).float()
        terms = {"ce": F.cross_entropy(logits, inputs["parse"])}
        if "D" in nets and self.loss_weights["adv"] != 0:
            terms["adv"], _ = self.gan.g_terms(nets["D"], torch.softmax(logits, 1), inputs["parse_condition"])
        return terms, palette_image(logits.detach())

    def generate(self, nets: Mapping[str, nn.Module], inputs: Mapping[str, Tensor]) -> Tensor:
        return palette_image(self.logits(nets["G"], inputs))

    def target(self, inputs: Mapping[str, Tensor]) -> Tensor:
        return palette_image(inputs["tgt_parse_onehot"])

    def validation_metrics(self, nets: Mapping[str, nn.Module], inputs: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """Judged by its parse: pixel accuracy and mean IoU over the classes present."""
        return parse_scores(self.logits(nets["G"], inputs).argmax(1), inputs["parse"], NUM_LIP_LABELS)


# ---------------------------------------------------------------------------------- stage 1: GMM


class TreeBlockGMMRecipe(_TreeBlockRecipe):
    name: ClassVar[str] = "tree_block.gmm"
    tries_on: ClassVar[bool] = False  # its output is the warped garment
    networks: ClassVar[tuple[NetworkSpec, ...]] = (NetworkSpec("G", "generator", ADAM),)
    phases: ClassVar[tuple[Phase, ...]] = (Phase("G", ("G",), "g_losses"),)
    default_loss_weights: ClassVar[dict[str, float]] = {"l1": 1.0, "gic": 0.0}
    default_model_options: ClassVar[dict[str, Any]] = {"ngf": 64, "grid_size": 5, "align_corners": False}

    def __init__(self, context: RecipeContext) -> None:
        super().__init__(context)
        _check_int(self.model_options, "ngf")
        _check_int(self.model_options, "grid_size", 2)
        if not isinstance(self.model_options["align_corners"], bool):
            raise ValueError(f"model.align_corners: expected true or false, got {self.model_options['align_corners']!r}")
        self._check_image_size(16, "the extractors' four downsamplings")

    def build_networks(self) -> dict[str, nn.Module]:
        o = self.model_options
        return {"G": networks.gmm(tuple(self.context.image_size), o["grid_size"], o["ngf"])}

    def inputs(self, batch: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """Teacher forcing: the person input is built from the target's ground-truth parse."""
        x = self._fields(batch)
        x["gmm_person"] = gmm_person_input(x["tgt_parse_onehot"], x["tgt_pose"])
        return x

    def teacher_forcing(self) -> str | None:
        return "warps to the ground-truth target parse (its shape and garment region)"

    def warp(self, gmm: nn.Module, person: Tensor, x: Mapping[str, Tensor]) -> tuple[Tensor, Tensor, Tensor]:
        """(theta, warped cloth (border padding, as CP-VTON), warped cloth mask (zero padding))."""
        cloth = x["cloth"]
        theta, grid = gmm(person.to(cloth.dtype), cloth)
        grid = grid.to(cloth.dtype)
        corners = self.model_options["align_corners"]
        warped = F.grid_sample(cloth, grid, padding_mode="border", align_corners=corners)
        warped_mask = F.grid_sample(x["cloth_mask"], grid, padding_mode="zeros", align_corners=corners)
        return theta, warped, warped_mask

    @staticmethod
    def on_white(warped: Tensor, warped_mask: Tensor) -> Tensor:
        return warped * warped_mask + (1 - warped_mask)

    def g_losses(self, nets: Mapping[str, nn.Module], inputs: Mapping[str, Tensor]) -> tuple[dict[str, Tensor], Tensor]:
        theta, warped, warped_mask = self.warp(nets["G"], inputs["gmm_person"], inputs)
        composite = self.on_white(warped, warped_mask)
        terms = {"l1": l1_loss(composite, inputs["tgt_cloth_rgb"])}
        if self.loss_weights["gic"] != 0:
            terms["gic"] = second_order_constraint(theta, self.model_options["grid_size"])
        return terms, composite.detach()

    def generate(self, nets: Mapping[str, nn.Module], inputs: Mapping[str, Tensor]) -> Tensor:
        return self.on_white(*self.warp(nets["G"], inputs["gmm_person"], inputs)[1:])

    def target(self, inputs: Mapping[str, Tensor]) -> Tensor:
        return inputs["tgt_cloth_rgb"]


# ------------------------------------------------------------------------------ stage 2: G_A


def upstream(parse: tuple[TreeBlockParseRecipe, nn.Module], gmm: tuple[TreeBlockGMMRecipe, nn.Module],
             x: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """P's soft target parse and the GMM's warp of the cloth to it: what the appearance generator
    reads. Frozen stages run it without a graph; the joint stage runs it with one, so its loss
    reaches P through the soft parse (into the GMM's person input and G_A's input) and the GMM."""
    (parse_recipe, P), (gmm_recipe, G) = parse, gmm
    soft = parse_recipe.soft_parse(P, x)
    _, warped, warped_mask = gmm_recipe.warp(G, gmm_person_input(soft, x["tgt_pose"]), x)
    return {"soft_parse": soft, "warped": warped, "warped_mask": warped_mask,
            "app_input": torch.cat([x["src_agnostic"], soft.to(warped.dtype), warped], 1)}


class TreeBlockAppearanceRecipe(_TreeBlockRecipe):
    name: ClassVar[str] = "tree_block.app"
    networks: ClassVar[tuple[NetworkSpec, ...]] = (NetworkSpec("G", "generator", ADAM),
                                                   NetworkSpec("D", "discriminator", ADAM))
    phases: ClassVar[tuple[Phase, ...]] = GAN_PHASES
    #: ``pixel`` 50, not the spec's 100: smooth-L1 at initialisation is ~0.16, so 100 would make it 16x
    #: the adversarial term (the bound is 10x; tests/test_tree_block.py measures every term).
    default_loss_weights: ClassVar[dict[str, float]] = {
        "adv": 1.0, "pixel": 50.0, "feat": 10.0, "style": 10.0, "atten": 1.0, "tv": 0.1, "d_real": 1.0, "d_fake": 1.0}
    default_model_options: ClassVar[dict[str, Any]] = {
        "ngf": 64, "ndf": 64,
        "block": "tree",                    # tree | resnet (the paper's SRB-VTON baseline)
        "n_blocks": 9,
        "tree_dilations": [1, 2, 4, 8],     # one branch per dilation; a power-of-two count
        "atten_target": "warped_mask",      # warped_mask | target_cloth_region (what M is pulled to)
        "parse": None,                      # models:/... of a registered tree_block.parse stage (required)
        "gmm": None,                        # models:/... of a registered tree_block.gmm stage (required)
    }
    consumes: ClassVar[dict[str, str]] = {"parse": "tree_block.parse", "gmm": "tree_block.gmm"}
    _stage_classes: ClassVar[dict[str, type[Recipe]]] = {"parse": TreeBlockParseRecipe, "gmm": TreeBlockGMMRecipe}

    def __init__(self, context: RecipeContext) -> None:
        super().__init__(context)
        o = self.model_options
        for key in ("ngf", "ndf"):
            _check_int(o, key)
        _check_int(o, "n_blocks", 0)
        _check_choice(o, "block", BLOCKS)
        _check_choice(o, "atten_target", ("warped_mask", "target_cloth_region"))
        if not isinstance(o["tree_dilations"], (list, tuple)):
            raise ValueError(f"model.tree_dilations: expected a list of integers, got {o['tree_dilations']!r}")
        check_dilations(o["tree_dilations"], "model.tree_dilations")
        self._check_image_size(4, "the generator's two downsamplings")
        self.gan = ConditionalGAN(context.gan_mode, condition_first=True)  # D sees [source; image]
        self.vgg = LazyLossNetwork(lambda: VGGFeatureStyleLoss("relu1_2"))
        self.frozen: dict[str, tuple[Recipe, nn.Module]] = {}

    def required_stages(self) -> dict[str, str]:
        why = "the appearance generator renders on P's predicted parse and the GMM's warp (the paper's step 2)"
        return {"parse": why, "gmm": why}

    def attach_stage(self, key: str, stage: Recipe, networks_: Mapping[str, nn.Module]) -> None:
        expected = self._stage_classes.get(key)
        if expected is None or not isinstance(stage, expected):
            raise ValueError(f"recipe '{self.name}': model.{key} must be a registered "
                             f"'{self.consumes.get(key, key)}' model, got a '{stage.name}' model")
        self.frozen[key] = (stage, networks_["G"].eval().requires_grad_(False))

    def required_weights(self) -> tuple[str, ...]:
        return ("vgg19",) if self.loss_weights["feat"] or self.loss_weights["style"] else ()

    def build_networks(self) -> dict[str, nn.Module]:
        o = self.model_options
        return {"G": networks.appearance_generator(o["ngf"], o["n_blocks"], o["block"], o["tree_dilations"]),
                "D": networks.pair_discriminator(o["ndf"])}

    def _frozen(self, key: str, device: torch.device) -> tuple[Any, nn.Module]:
        recipe, net = self.frozen[key]
        return recipe, net.to(device)

    def inputs(self, batch: Mapping[str, Tensor]) -> dict[str, Tensor]:
        missing = [key for key in self.consumes if key not in self.frozen]
        if missing:
            raise ValueError(f"recipe '{self.name}' needs model.{missing[0]} (models:/... of a registered "
                             f"{self.consumes[missing[0]]} stage); none is attached")
        x = self._fields(batch)
        device = x["cloth"].device
        with torch.no_grad():
            x.update(upstream(self._frozen("parse", device), self._frozen("gmm", device), x))
        return x

    def render(self, G: nn.Module, inputs: Mapping[str, Tensor]) -> tuple[Tensor, Tensor, Tensor]:
        """(try-on, coarse render, composition mask M)."""
        out = G(inputs["app_input"])
        rendered, mask = torch.tanh(out[:, :3]), torch.sigmoid(out[:, 3:4])
        return inputs["warped"] * mask + rendered * (1 - mask), rendered, mask

    def d_losses(self, nets: Mapping[str, nn.Module], inputs: Mapping[str, Tensor]) -> dict[str, Tensor]:
        with torch.no_grad():
            fake = self.render(nets["G"], inputs)[0]
        return self.gan.d_terms(nets["D"], fake, inputs["person"], inputs["src_person"])

    def appearance_terms(self, nets: Mapping[str, nn.Module], inputs: Mapping[str, Tensor],
                         tryon: Tensor, mask: Tensor) -> dict[str, Tensor]:
        """Eq. 8's terms (plus ``style``, which the text uses and the equation omits)."""
        person, w = inputs["person"], self.loss_weights
        target = inputs["warped_mask"] if self.model_options["atten_target"] == "warped_mask" \
            else inputs["tgt_cloth_region"]
        terms = {"pixel": smooth_l1_loss(tryon, person), "atten": l1_loss(mask.float(), target.float()),
                 "tv": total_variation(mask)}
        if w["feat"] or w["style"]:
            terms["feat"], terms["style"] = self.vgg(tryon, person)
        if "D" in nets and w["adv"] != 0:
            terms["adv"], _ = self.gan.g_terms(nets["D"], tryon, inputs["src_person"])
        return terms

    def g_losses(self, nets: Mapping[str, nn.Module], inputs: Mapping[str, Tensor]) -> tuple[dict[str, Tensor], Tensor]:
        tryon, _, mask = self.render(nets["G"], inputs)
        return self.appearance_terms(nets, inputs, tryon, mask), tryon.detach()

    def generate(self, nets: Mapping[str, nn.Module], inputs: Mapping[str, Tensor]) -> Tensor:
        return self.render(nets["G"], inputs)[0]
