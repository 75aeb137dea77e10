"""Recipe ``unet_sa``: the seed-000 "multimodal U-Net" (U-Net + self-attention G, PatchGAN D).

One stage, two networks. G maps the 41-channel person representation (cloth-agnostic RGB, 18 pose
heatmaps, 20-class parse one-hot) to the try-on image; D judges ``[image; condition]`` patches.

Loss terms (paper Sec. 4.3), returned unweighted and named as the config weights them:

- G side: ``adv`` (GAN loss of D on the fake, LSGAN by default), ``vgg`` (VGG19 perceptual),
  ``l1`` (pixels) and ``fm`` (feature matching on D's hidden activations, not on pixels). Paper
  weights 1 / 10 / 10 / 10.
- D side: ``d_real`` + ``d_fake``, both weight 1.0, i.e. Eq. 23's sum (not the 0.5 average some
  pix2pix code uses); ``gp`` is an optional WGAN-GP term, weight 0.0 = off and not computed.

Where the paper is vague (documented choices):

- D's 3-channel condition is not named; ``model.d_condition=agnostic`` (default) uses the
  cloth-agnostic RGB, i.e. channels 0-2 of G's input (the author's notebook passes the
  cloth-agnostic image), ``cloth`` uses the in-shop garment instead.

A paper bug we fix, as an option (``model.garment_input``): Eq. 11's 41 channels carry no garment,
so G can only inpaint the removed region from the person's own parse and cannot put a new garment
on anyone. ``none`` keeps the paper's input (its numbers, the baseline); ``cloth`` adds the in-shop
garment RGB, ``cloth_and_mask`` also its mask, and ``warped`` the garment warped by a registered
``viton_hd.gmm`` stage (``model.gmm``, consumed frozen, as CP-VTON and VITON-HD feed their
generators). In those three, the parse's garment labels (upper clothes, coat) are merged into one
upper-body-region channel, the region the agnostic image grays out, so the parse says where a
garment goes but not which garment was there: 40 person channels + 3, 4 or 3.
- The perceptual layer weights follow the paper (all 1.0, Eq. 25); set
  ``model.vgg_layer_weights=[0.03125, 0.0625, 0.125, 0.25, 1.0]`` for pix2pixHD's.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import torch
from torch import nn

from vton_models.families.unet_sa.inputs import UNET_SA, UNET_SA_WITH_GMM, gmm_fields
from vton_models.families.unet_sa.networks import VARIANTS, build_unet_sa_generator
from vton_models.gan import ConditionalGAN, LazyPerceptual
from vton_models.losses import gradient_penalty, l1_loss
from vton_models.networks.patchgan import PatchGANDiscriminator
from vton_models.recipe import NetworkSpec, Phase, Recipe, RecipeContext
from vton_models.representation.base import Representation
from vton_models.representation.parse import GARMENT_LABELS, NUM_LIP_LABELS

Tensor = torch.Tensor

_D_CONDITIONS = ("agnostic", "cloth")
#: ``model.garment_input`` -> the garment channels appended to G's input.
GARMENT_INPUTS: dict[str, int] = {"none": 0, "cloth": 3, "cloth_and_mask": 4, "warped": 3}
_PERSON_CHANNELS = 3 + 18  # agnostic RGB + pose heatmaps; the parse one-hot follows
_KEPT_LABELS = tuple(label for label in range(NUM_LIP_LABELS) if label not in GARMENT_LABELS)
_INT_OPTIONS = ("ngf", "ndf", "n_downsampling", "n_blocks")


class UnetSARecipe(Recipe):
    name: ClassVar[str] = "unet_sa"
    networks: ClassVar[tuple[NetworkSpec, ...]] = (NetworkSpec("G", "generator"), NetworkSpec("D", "discriminator"))
    phases: ClassVar[tuple[Phase, ...]] = (Phase("D", ("D",), "d_losses"), Phase("G", ("G",), "g_losses"))
    default_loss_weights: ClassVar[dict[str, float]] = {
        "adv": 1.0, "vgg": 10.0, "l1": 10.0, "fm": 10.0,
        "d_real": 1.0, "d_fake": 1.0, "gp": 0.0,
    }
    representation: ClassVar[Representation] = UNET_SA
    batch_fields: ClassVar[dict[str, int]] = {
        "inputs": 41, "person": 3, "cloth": 3, "cloth_mask": 1, "agnostic": 3,
    }
    default_model_options: ClassVar[dict[str, Any]] = {
        "variant": "full",          # full (n_downsampling 4, n_blocks 9) | reduced (3, 6)
        "ngf": 64,                  # generator base width
        "ndf": 64,                  # discriminator base width
        "n_downsampling": None,     # None: the variant's value
        "n_blocks": None,           # None: the variant's value
        "attention": True,          # self-attention at the bottleneck
        "dropout": 0.0,             # in residual and up blocks (the paper uses none)
        "d_condition": "agnostic",  # agnostic | cloth: the 3 channels D sees beside the image
        "garment_input": "none",    # none (paper, Eq. 11) | cloth | cloth_and_mask | warped: what G sees of the garment
        "gmm": None,                # models:/... of a viton_hd.gmm stage (garment_input=warped)
        "vgg_layer_weights": [1.0, 1.0, 1.0, 1.0, 1.0],  # relu1_1..relu5_1
    }

    #: Options that change G's input; ``vton models summary`` reports every value.
    input_variants: ClassVar[dict[str, tuple[str, ...]]] = {"garment_input": tuple(GARMENT_INPUTS)}

    def __init__(self, context: RecipeContext) -> None:
        super().__init__(context)
        self._validate_options()
        self.garment_input: str = self.model_options["garment_input"]
        self.frozen_gmm: tuple[Recipe, nn.Module] | None = None
        if self.garment_input == "warped":  # the batch also carries what the GMM reads
            self.consumes = {"gmm": "viton_hd.gmm"}
            self.representation = UNET_SA_WITH_GMM
        self.gan = ConditionalGAN(context.gan_mode)
        self.perceptual = LazyPerceptual(self.model_options["vgg_layer_weights"])
        height, width = context.image_size
        factor = 2 ** self._resolved("n_downsampling")
        if height % factor or width % factor:
            raise ValueError(
                f"image_size {tuple(context.image_size)}: recipe 'unet_sa' with "
                f"model.n_downsampling={self._resolved('n_downsampling')} needs height and width "
                f"divisible by {factor}"
            )

    # -- options ----------------------------------------------------------------------------
    def _validate_options(self) -> None:
        opts = self.model_options
        if opts["variant"] not in VARIANTS:
            raise ValueError(f"model.variant: {opts['variant']!r} is not one of {sorted(VARIANTS)}")
        for key in _INT_OPTIONS:
            value = opts[key]
            if value is None and key in ("n_downsampling", "n_blocks"):
                continue
            minimum = 0 if key == "n_blocks" else 1
            if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
                raise ValueError(f"model.{key}: expected an integer >= {minimum}, got {value!r}")
        if not isinstance(opts["attention"], bool):
            raise ValueError(f"model.attention: expected true or false, got {opts['attention']!r}")
        dropout = opts["dropout"]
        if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not 0 <= dropout < 1:
            raise ValueError(f"model.dropout: expected a number in [0, 1), got {dropout!r}")
        if opts["garment_input"] not in GARMENT_INPUTS:
            raise ValueError(f"model.garment_input: {opts['garment_input']!r} is not one of {list(GARMENT_INPUTS)}")
        if opts["gmm"] is not None and opts["garment_input"] != "warped":
            raise ValueError(f"model.gmm: only model.garment_input=warped consumes a GMM stage "
                             f"(garment_input is {opts['garment_input']!r})")
        if opts["d_condition"] not in _D_CONDITIONS:
            raise ValueError(f"model.d_condition: {opts['d_condition']!r} is not one of {list(_D_CONDITIONS)}")
        weights = opts["vgg_layer_weights"]
        if (
            not isinstance(weights, (list, tuple)) or len(weights) != 5
            or any(isinstance(w, bool) or not isinstance(w, (int, float)) or w < 0 for w in weights)
        ):
            raise ValueError(
                f"model.vgg_layer_weights: expected 5 non-negative numbers (relu1_1..relu5_1), got {weights!r}"
            )

    def _resolved(self, key: str) -> int:
        value = self.model_options[key]
        return VARIANTS[self.model_options["variant"]][key] if value is None else value

    # -- networks ---------------------------------------------------------------------------
    def build_networks(self) -> dict[str, nn.Module]:
        opts = self.model_options
        generator = build_unet_sa_generator(
            opts["variant"],
            input_channels=self.generator_channels,
            output_channels=3,
            ngf=opts["ngf"],
            n_downsampling=opts["n_downsampling"],
            n_blocks=opts["n_blocks"],
            attention=opts["attention"],
            dropout=float(opts["dropout"]),
        )
        discriminator = PatchGANDiscriminator(input_channels=6, ndf=opts["ndf"])
        return {"G": generator, "D": discriminator}

    @property
    def generator_channels(self) -> int:
        extra = GARMENT_INPUTS[self.garment_input]
        return self.batch_fields["inputs"] if extra == 0 else _PERSON_CHANNELS + len(_KEPT_LABELS) + 1 + extra

    @property
    def reads_cloth_mask(self) -> bool:
        return self.garment_input in ("cloth_and_mask", "warped")

    def required_stages(self) -> dict[str, str]:
        return {"gmm": "model.garment_input=warped feeds G the garment warped by a registered viton_hd.gmm stage"} \
            if self.garment_input == "warped" else {}

    def attach_stage(self, key: str, stage: Recipe, networks: Mapping[str, nn.Module]) -> None:
        if key != "gmm" or self.garment_input != "warped":
            super().attach_stage(key, stage, networks)
        self.frozen_gmm = (stage, networks["G"].eval().requires_grad_(False))

    def required_weights(self) -> tuple[str, ...]:
        return ("vgg19",) if self.loss_weights["vgg"] != 0 else ()

    # -- data -------------------------------------------------------------------------------
    def inputs(self, batch: Mapping[str, Tensor]) -> dict[str, Tensor]:
        out = self.checked_fields(batch)
        out["g_input"] = self._generator_input(batch, out)
        if self.model_options["d_condition"] == "agnostic":
            out["condition"] = out["inputs"][:, :3]
        else:
            out["condition"] = out["cloth"]
        return out

    def _generator_input(self, batch: Mapping[str, Tensor], x: Mapping[str, Tensor]) -> Tensor:
        """The paper's 41 channels, or the person without its garment labels plus the garment."""
        if self.garment_input == "none":
            return x["inputs"]
        person = x["inputs"][:, :_PERSON_CHANNELS]
        parse = x["inputs"][:, _PERSON_CHANNELS:]
        kept = parse[:, list(_KEPT_LABELS)]
        region = parse[:, list(GARMENT_LABELS)].sum(1, keepdim=True)  # one-hot: the sum is the union
        if self.garment_input == "cloth":
            garment = [x["cloth"]]
        elif self.garment_input == "cloth_and_mask":
            garment = [x["cloth"], x["cloth_mask"]]
        else:
            garment = [self._warped_cloth(batch)]
        return torch.cat([person, kept, region, *garment], 1)

    def _warped_cloth(self, batch: Mapping[str, Tensor]) -> Tensor:
        if self.frozen_gmm is None:
            raise ValueError("recipe 'unet_sa': model.garment_input=warped needs model.gmm (models:/... of a "
                             "registered viton_hd.gmm stage); none is attached")
        recipe, gmm = self.frozen_gmm
        fields = gmm_fields(batch)
        with torch.no_grad():
            _, warped, _ = recipe.warp(gmm.to(fields["cloth"].device), recipe.inputs(fields))
        return warped

    # -- losses -----------------------------------------------------------------------------
    def d_losses(self, nets: Mapping[str, nn.Module], inputs: Mapping[str, Tensor]) -> dict[str, Tensor]:
        G, D = nets["G"], nets["D"]
        real, condition = inputs["person"], inputs["condition"]
        fake = self.fakes_for_discriminator(lambda: G(inputs["g_input"]))
        terms = self.gan.d_terms(D, fake, real, condition)
        if self.loss_weights["gp"] != 0:
            terms["gp"] = gradient_penalty(D, real, fake, condition)
        return terms

    def g_losses(
        self, nets: Mapping[str, nn.Module], inputs: Mapping[str, Tensor]
    ) -> tuple[dict[str, Tensor], Tensor]:
        G, D = nets["G"], nets["D"]
        real, condition = inputs["person"], inputs["condition"]
        fake = self.keep_for_discriminator(G(inputs["g_input"]))
        adv, fm = self.gan.g_terms(D, fake, condition, real if self.loss_weights["fm"] != 0 else None)
        terms: dict[str, Tensor] = {"adv": adv}
        if fm is not None:
            terms["fm"] = fm
        terms["l1"] = l1_loss(fake, real)
        if self.loss_weights["vgg"] != 0:
            terms["vgg"] = self.perceptual(fake, real)
        return terms, fake

    def generate(self, nets: Mapping[str, nn.Module], inputs: Mapping[str, Tensor]) -> Tensor:
        return nets["G"](inputs["g_input"])
