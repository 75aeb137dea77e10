"""Recipe family ``viton_hd`` (seed 001): VITON-HD's three stages, each a recipe the generic loop trains.

* ``viton_hd.seg``: SegGenerator predicts the 13-class try-on parse from (cloth mask, masked cloth,
  parse-agnostic, pose image, noise). Terms: ``ce`` (cross-entropy on the logits, weight 10) and a
  conditional GAN over a multi-scale D that sees ``[seg input; parse]`` (``adv``, ``d_real``, ``d_fake``).
* ``viton_hd.gmm``: GMM warps the cloth with a 5x5 TPS. Terms: ``l1`` between warped cloth and the worn
  garment, ``gic`` the second-order difference constraint on the control points (weight 0.04, as in
  VITON-HD/ACGPN), optional ``mask_l1`` between warped cloth mask and the cloth region. No
  discriminator: the loop runs no D phase for it (rather than stepping a D whose losses weigh 0).
* ``viton_hd.alias``: ALIAS generator synthesises the person from (agnostic, pose, warped cloth)
  conditioned on the 7-class parse and the misalignment mask. Terms: ``adv`` (hinge or LSGAN, from
  ``loss.gan_mode``) over a multi-scale D (spectral + instance norm, dropout 0.2), ``fm`` 10, ``vgg`` 10,
  ``l1`` 10, optional ``gp`` (WGAN-GP, lambda 10 in the dissertation; weight 0 = off, not computed).

Documented choices where the sources are silent: the seg D judges the generator's sigmoid scores
against the one-hot ground truth; the ALIAS D sees ``[image; 7-class parse]`` (SPADE's conditioning).

Teacher forcing (``Recipe.teacher_forcing``, recorded as the run tag ``vton.teacher_forcing``): the
stages train on paired data, each reading the ground truth where the try-on would read an upstream
prediction. ``seg`` reads only what a user provides. ``gmm`` warps to the ground-truth garment
region. ``alias`` is conditioned on the ground-truth 7-class parse and takes the ground-truth worn
garment as its "warped cloth" unless a registered GMM is consumed (``model.gmm``), whose warp of the
worn garment it then takes. None of them tries a *new* garment on; ``viton_hd.tryon`` (``chain.py``)
chains the registered stages on the garment given, as the official ``test.py`` does, and is what
``vton tryon`` and ``vton eval`` run.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from vton_models.families.viton_hd.inputs import VITON_HD
from vton_models.families.viton_hd.networks import UPSAMPLING_MODES, ALIASGenerator, SegGenerator
from vton_models.gan import ConditionalGAN, LazyPerceptual
from vton_models.losses import gradient_penalty, l1_loss, second_order_constraint
from vton_models.metrics.parse import parse_scores
from vton_models.networks.gmm import GMM
from vton_models.networks.multiscale import MultiscaleDiscriminator
from vton_models.recipe import NetworkSpec, Phase, Recipe, RecipeContext, int_option
from vton_models.representation.base import Representation
from vton_models.visual import palette_image

Tensor = torch.Tensor

#: A fixed colour per 13-class label, so a parse can be shown (and scored by the validator) as an image.
_PALETTE_13 = (
    (0, 0, 0), (254, 0, 0), (0, 0, 254), (254, 85, 0), (0, 85, 85), (51, 169, 220), (0, 254, 254),
    (85, 51, 0), (0, 128, 0), (254, 254, 0), (170, 254, 85), (0, 119, 221), (85, 254, 170),
)


def parse_to_image(parse: Tensor) -> Tensor:
    """(B, 13, H, W) one-hot or scores -> (B, 3, H, W) palette image in [-1, 1] (argmax per pixel)."""
    return palette_image(parse, _PALETTE_13)


def seg_noise(like: Tensor) -> Tensor:
    """VITON-HD's ``gen_noise``: ``cv2.randn`` into uint8 then ``// 255`` -> 1 where N(0, 255) >= 255, else 0."""
    return (torch.randn_like(like) >= 1.0).to(like.dtype)


def _check_size(opts: Mapping[str, Any], key: str) -> tuple[int, int] | None:
    value = opts[key]
    if value is None:
        return None
    if not isinstance(value, (list, tuple)) or len(value) != 2 or any(
            isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in value):
        raise ValueError(f"model.{key}: expected null or [height, width], got {value!r}")
    return int(value[0]), int(value[1])


class _VitonHDRecipe(Recipe):
    representation: ClassVar[Representation] = VITON_HD
    batch_fields: ClassVar[dict[str, int]] = {
        "parse_agnostic": 13, "img_agnostic": 3, "pose_img": 3, "cloth": 3, "cloth_mask": 1, "person": 3,
        "parse13": 13, "parse7": 7, "parse_cloth": 1, "warped_cloth": 3, "agnostic": 3,
    }

    def _fields(self, batch: Mapping[str, Tensor]) -> dict[str, Tensor]:
        return self.checked_fields(batch)

    def _d_options(self) -> None:
        opts = self.model_options
        for key in ("ndf", "n_layers_D", "num_D"):
            int_option(opts, key)
        p = opts["d_dropout"]
        if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0 <= p < 1:
            raise ValueError(f"model.d_dropout: expected a number in [0, 1), got {p!r}")

    def _discriminator(self, channels: int) -> MultiscaleDiscriminator:
        o = self.model_options
        return MultiscaleDiscriminator(channels, o["ndf"], o["n_layers_D"], o["num_D"], float(o["d_dropout"]))


class VitonHDSegRecipe(_VitonHDRecipe):
    name: ClassVar[str] = "viton_hd.seg"
    tries_on: ClassVar[bool] = False  # its output is a parse map
    networks: ClassVar[tuple[NetworkSpec, ...]] = (NetworkSpec("G", "generator"), NetworkSpec("D", "discriminator"))
    phases: ClassVar[tuple[Phase, ...]] = (Phase("D", ("D",), "d_losses"), Phase("G", ("G",), "g_losses"))
    default_loss_weights: ClassVar[dict[str, float]] = {"ce": 10.0, "adv": 1.0, "d_real": 1.0, "d_fake": 1.0}
    default_model_options: ClassVar[dict[str, Any]] = {
        "ngf": 64, "ndf": 64, "n_layers_D": 3, "num_D": 2, "d_dropout": 0.0,
        "work_size": [256, 192],  # [H, W] the stage runs at (official 256x192); null = as loaded
    }

    def __init__(self, context: RecipeContext) -> None:
        super().__init__(context)
        int_option(self.model_options, "ngf")
        self._d_options()
        self.work_size = _check_size(self.model_options, "work_size")
        h, w = self.work_size or tuple(context.image_size)
        if h % 16 or w % 16:
            raise ValueError(f"recipe 'viton_hd.seg': working size {(h, w)} must be divisible by 16 "
                             "(set model.work_size or data.image_size)")
        self.gan = ConditionalGAN(context.gan_mode, condition_first=True)  # D sees [seg input; parse]

    def build_networks(self) -> dict[str, nn.Module]:
        return {"G": SegGenerator(21, 13, self.model_options["ngf"]), "D": self._discriminator(21 + 13)}

    def inputs(self, batch: Mapping[str, Tensor]) -> dict[str, Tensor]:
        x = self._fields(batch)
        size = self.work_size or tuple(x["person"].shape[2:])

        def down(t: Tensor) -> Tensor:  # official test.py: bilinear to 256x192
            return t if tuple(t.shape[2:]) == tuple(size) else F.interpolate(t, size=size, mode="bilinear")

        cm = down(x["cloth_mask"])
        x["seg_input"] = torch.cat([cm, down(x["cloth"] * x["cloth_mask"]), down(x["parse_agnostic"]),
                                    down(x["pose_img"]), seg_noise(cm)], 1)
        target = x["parse13"] if tuple(x["parse13"].shape[2:]) == tuple(size) else \
            F.interpolate(x["parse13"], size=size, mode="nearest")
        x["parse_target"] = target
        x["parse_labels"] = target.argmax(1)
        return x

    def d_losses(self, nets: Mapping[str, nn.Module], inputs: Mapping[str, Tensor]) -> dict[str, Tensor]:
        cond = inputs["seg_input"]
        fake = self.fakes_for_discriminator(lambda: nets["G"](cond))
        return self.gan.d_terms(nets["D"], fake, inputs["parse_target"], cond)

    def g_losses(self, nets: Mapping[str, nn.Module], inputs: Mapping[str, Tensor]) -> tuple[dict[str, Tensor], Tensor]:
        cond = inputs["seg_input"]
        logits = nets["G"](cond, return_logits=True)
        fake = self.keep_for_discriminator(torch.sigmoid(logits))  # what G(cond) returns
        terms = {"ce": F.cross_entropy(logits.float(), inputs["parse_labels"])}
        if "D" in nets and self.loss_weights["adv"] != 0:
            terms["adv"], _ = self.gan.g_terms(nets["D"], fake, cond)
        return terms, parse_to_image(logits.detach())

    def generate(self, nets: Mapping[str, nn.Module], inputs: Mapping[str, Tensor]) -> Tensor:
        return parse_to_image(nets["G"](inputs["seg_input"]))

    def target(self, inputs: Mapping[str, Tensor]) -> Tensor:
        return parse_to_image(inputs["parse_target"])

    def validation_metrics(self, nets: Mapping[str, nn.Module], inputs: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """The stage is judged by its parse: pixel accuracy and mean IoU over the classes present."""
        predicted = nets["G"](inputs["seg_input"], return_logits=True).argmax(1)
        return parse_scores(predicted, inputs["parse_labels"], 13)

    def sample_panels(self, inputs: Mapping[str, Tensor], generated: Tensor) -> dict[str, Tensor]:
        size = generated.shape[2:]
        return {"agnostic": F.interpolate(inputs["img_agnostic"], size=size),
                "cloth": F.interpolate(inputs["cloth"], size=size), "predicted parse": generated,
                "true parse": self.target(inputs)}


class VitonHDGMMRecipe(_VitonHDRecipe):
    name: ClassVar[str] = "viton_hd.gmm"
    tries_on: ClassVar[bool] = False  # its output is the warped garment
    networks: ClassVar[tuple[NetworkSpec, ...]] = (NetworkSpec("G", "generator"),)
    #: Regression only: no discriminator and no D phase (rather than stepping a D whose losses weigh 0).
    phases: ClassVar[tuple[Phase, ...]] = (Phase("G", ("G",), "g_losses"),)
    default_loss_weights: ClassVar[dict[str, float]] = {"l1": 1.0, "gic": 0.04, "mask_l1": 0.0}
    default_model_options: ClassVar[dict[str, Any]] = {
        "ngf": 64, "grid_size": 5, "tps_extent": 0.9,
        "work_size": [256, 192],  # [H, W] of the GMM inputs (official); null = as loaded. Warp at full size
    }

    def __init__(self, context: RecipeContext) -> None:
        super().__init__(context)
        for key in ("ngf", "grid_size"):
            int_option(self.model_options, key, 2 if key == "grid_size" else 1)
        self.work_size = _check_size(self.model_options, "work_size") or tuple(context.image_size)
        self.image_size = tuple(context.image_size)

    def build_networks(self) -> dict[str, nn.Module]:
        o = self.model_options
        return {"G": GMM(7, 3, self.work_size, self.image_size, o["grid_size"], o["ngf"], float(o["tps_extent"]))}

    def inputs(self, batch: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """Teacher forcing: the garment region to warp to is the ground-truth one (``parse_cloth``)."""
        x = self._fields(batch)
        x.update(self.gmm_inputs(x, x["parse_cloth"]))
        return x

    def gmm_inputs(self, x: Mapping[str, Tensor], garment_region: Tensor) -> dict[str, Tensor]:
        """The GMM's two inputs for warping the cloth to ``garment_region`` (B, 1, H, W): the
        ground-truth one in training, the segmentation's prediction in the try-on chain."""

        def down(t: Tensor) -> Tensor:  # official test.py: nearest to 256x192
            return t if tuple(t.shape[2:]) == tuple(self.work_size) else F.interpolate(t, size=self.work_size, mode="nearest")

        return {"gmm_a": torch.cat([down(garment_region), down(x["pose_img"]), down(x["img_agnostic"])], 1),
                "gmm_b": down(x["cloth"])}

    def teacher_forcing(self) -> str | None:
        return "warps to the ground-truth garment region of the person's parse (parse_cloth)"

    def warp(self, gmm: nn.Module, inputs: Mapping[str, Tensor]) -> tuple[Tensor, Tensor, Tensor]:
        """(theta, warped cloth, warped mask) at the loaded size, sampled as the official ``test.py`` does."""
        theta, grid = gmm(inputs["gmm_a"], inputs["gmm_b"], tuple(inputs["cloth"].shape[2:]))
        grid = grid.to(inputs["cloth"].dtype)
        warped = F.grid_sample(inputs["cloth"], grid, padding_mode="border", align_corners=False)
        warped_mask = F.grid_sample(inputs["cloth_mask"], grid, padding_mode="border", align_corners=False)
        return theta, warped, warped_mask

    def g_losses(self, nets: Mapping[str, nn.Module], inputs: Mapping[str, Tensor]) -> tuple[dict[str, Tensor], Tensor]:
        theta, warped, warped_mask = self.warp(nets["G"], inputs)
        # The garment target is on white; so is the cloth image, so composite the warp on white too.
        composite = warped * warped_mask + (1 - warped_mask)
        terms = {"l1": l1_loss(composite, inputs["warped_cloth"]),
                 "gic": second_order_constraint(theta, self.model_options["grid_size"])}
        if self.loss_weights["mask_l1"] != 0:
            terms["mask_l1"] = l1_loss(warped_mask, inputs["parse_cloth"])
        return terms, composite.detach()

    def generate(self, nets: Mapping[str, nn.Module], inputs: Mapping[str, Tensor]) -> Tensor:
        _, warped, warped_mask = self.warp(nets["G"], inputs)
        return warped * warped_mask + (1 - warped_mask)

    def target(self, inputs: Mapping[str, Tensor]) -> Tensor:
        return inputs["warped_cloth"]

    def sample_panels(self, inputs: Mapping[str, Tensor], generated: Tensor) -> dict[str, Tensor]:
        return {"agnostic": inputs["img_agnostic"], "cloth": inputs["cloth"], "warped cloth": generated,
                "worn cloth (truth)": inputs["warped_cloth"]}


def alias_inputs(x: Mapping[str, Tensor], parse7: Tensor, warped: Tensor, warped_mask: Tensor) -> dict[str, Tensor]:
    """ALIAS's inputs (official ``test.py`` Part 3): the part of the parse's cloth region the warped
    cloth does not cover is "misaligned"; it is cut out of that region and given its own channel."""
    misalign = (parse7[:, 2:3] - warped_mask).clamp_min(0.0)
    seg_div = torch.cat([parse7, misalign], 1)
    seg_div[:, 2:3] -= misalign
    return {"alias_x": torch.cat([x["img_agnostic"], x["pose_img"], warped], 1), "seg": parse7, "seg_div": seg_div,
            "misalign": misalign, "warped": warped}


class VitonHDAliasRecipe(_VitonHDRecipe):
    name: ClassVar[str] = "viton_hd.alias"
    networks: ClassVar[tuple[NetworkSpec, ...]] = (NetworkSpec("G", "generator"), NetworkSpec("D", "discriminator"))
    phases: ClassVar[tuple[Phase, ...]] = (Phase("D", ("D",), "d_losses"), Phase("G", ("G",), "g_losses"))
    default_loss_weights: ClassVar[dict[str, float]] = {
        "adv": 1.0, "fm": 10.0, "vgg": 10.0, "l1": 10.0, "d_real": 1.0, "d_fake": 1.0, "gp": 0.0}
    default_model_options: ClassVar[dict[str, Any]] = {
        "ngf": 64, "norm_hidden": 128, "num_upsampling_layers": "most",
        "ndf": 64, "n_layers_D": 4, "num_D": 2, "d_dropout": 0.2,
        # A registered GMM (models:/NAME@ALIAS or /VERSION) whose warp replaces the ground-truth
        # warped garment as ALIAS's cloth input; null trains with the ground truth (teacher forcing).
        "gmm": None,
    }
    consumes: ClassVar[dict[str, str]] = {"gmm": "viton_hd.gmm"}

    def __init__(self, context: RecipeContext) -> None:
        super().__init__(context)
        opts = self.model_options
        for key in ("ngf", "norm_hidden"):
            int_option(opts, key, 2)
        if opts["num_upsampling_layers"] not in UPSAMPLING_MODES:
            raise ValueError(f"model.num_upsampling_layers: {opts['num_upsampling_layers']!r} is not one of "
                             f"{sorted(UPSAMPLING_MODES)}")
        self._d_options()
        self.gan = ConditionalGAN(context.gan_mode)  # D sees [image; 7-class parse]
        self.perceptual = LazyPerceptual()
        self.frozen_gmm: tuple[VitonHDGMMRecipe, nn.Module] | None = None

    def set_frozen(self, gmm_recipe: VitonHDGMMRecipe, gmm: nn.Module) -> None:
        """Use a trained (frozen) GMM's warp as the cloth input instead of the ground-truth garment."""
        self.frozen_gmm = (gmm_recipe, gmm.eval().requires_grad_(False))

    def attach_stage(self, key: str, stage: Recipe, networks: Mapping[str, nn.Module]) -> None:
        if key != "gmm" or not isinstance(stage, VitonHDGMMRecipe):
            raise ValueError(f"recipe 'viton_hd.alias': model.{key} must be a registered '{VitonHDGMMRecipe.name}' "
                             f"model, got a '{stage.name}' model")
        self.set_frozen(stage, networks["G"])

    def required_weights(self) -> tuple[str, ...]:
        return ("vgg19",) if self.loss_weights["vgg"] != 0 else ()

    def build_networks(self) -> dict[str, nn.Module]:
        o = self.model_options
        return {"G": ALIASGenerator(9, 7, o["ngf"], o["num_upsampling_layers"], o["norm_hidden"]),
                "D": self._discriminator(3 + 7)}

    def inputs(self, batch: Mapping[str, Tensor]) -> dict[str, Tensor]:
        x = self._fields(batch)
        parse = x["parse7"]
        if self.frozen_gmm is not None:
            recipe, gmm = self.frozen_gmm
            with torch.no_grad():
                _, warped, warped_cm = recipe.warp(gmm.to(parse.device), recipe.inputs(batch))
        else:
            warped, warped_cm = x["warped_cloth"], x["parse_cloth"]
        x.update(alias_inputs(x, parse, warped, warped_cm))
        return x

    def teacher_forcing(self) -> str | None:
        cloth = ("the registered GMM's warp of the worn garment to the ground-truth region"
                 if self.frozen_gmm is not None or self.model_options.get("gmm")
                 else "the ground-truth worn garment (warped_cloth)")
        return f"conditioned on the ground-truth 7-class parse; cloth input: {cloth}"

    def _generate(self, G: nn.Module, x: Mapping[str, Tensor]) -> Tensor:
        return G(x["alias_x"], x["seg"], x["seg_div"], x["misalign"])

    def d_losses(self, nets: Mapping[str, nn.Module], inputs: Mapping[str, Tensor]) -> dict[str, Tensor]:
        real, cond = inputs["person"], inputs["seg"]
        fake = self.fakes_for_discriminator(lambda: self._generate(nets["G"], inputs))
        terms = self.gan.d_terms(nets["D"], fake, real, cond)
        if self.loss_weights["gp"] != 0:
            terms["gp"] = gradient_penalty(nets["D"], real, fake, cond)
        return terms

    def g_losses(self, nets: Mapping[str, nn.Module], inputs: Mapping[str, Tensor]) -> tuple[dict[str, Tensor], Tensor]:
        real, cond = inputs["person"], inputs["seg"]
        fake = self.keep_for_discriminator(self._generate(nets["G"], inputs))
        adv, fm = self.gan.g_terms(nets["D"], fake, cond, real if self.loss_weights["fm"] != 0 else None)
        terms: dict[str, Tensor] = {"adv": adv, "l1": l1_loss(fake, real)}
        if fm is not None:
            terms["fm"] = fm
        if self.loss_weights["vgg"] != 0:
            terms["vgg"] = self.perceptual(fake, real)
        return terms, fake

    def generate(self, nets: Mapping[str, nn.Module], inputs: Mapping[str, Tensor]) -> Tensor:
        return self._generate(nets["G"], inputs)

    def sample_panels(self, inputs: Mapping[str, Tensor], generated: Tensor) -> dict[str, Tensor]:
        return {"agnostic": inputs["img_agnostic"], "warped cloth": inputs["warped"], "generated": generated,
                "ground truth": inputs["person"]}
