"""Recipes of seed 004 (``spg_vton``, SPG-VTON, Hu et al., IEEE TMM 2022): multi-pose try-on from
MPV triplets (representation ``multipose``), trained in the paper's three steps (Sec. III-E).

* ``spg_vton.sem`` (step 1, the semantic prediction module's G1): the target's parse from the
  source's parse without hair, face and garment (S'_s), the source's face and hair masks (A_s), the
  cloth mask (M_C) and the target pose (P_t). Eq. 2: ``s_focal`` (focal loss, gamma 2, no class
  balance: the paper gives neither), ``s_recon`` (L1 of the softmax to the one-hot), LSGAN
  ``s_adv`` through D1 on [parse; condition], with WGAN-GP on D1 (``gp``, weight 10: "a gradient
  punishment strategy", no lambda given).
* ``spg_vton.tryon`` (step 2, G1 frozen): G2 draws a coarse person and its garment mask from G1's
  parse with the garment removed (Eqs. 5-6: ``p_adv`` through D2, ``p_recon``, ``p_perc``); the
  cycle-consistent warping module's two GMMs warp the cloth onto that mask and back (Eqs. 8-9:
  ``cond``); G3 redraws the coarse person, randomly erased in training, as a render and a
  composition mask over the warped cloth (Eqs. 11-16: ``t_recon`` with the mask term, ``t_perc``,
  ``g_adv`` through Dg on [image; garment worn], ``l_adv`` through Dl on [face; hair; garment worn],
  ``id`` between face embeddings of the head crops). Every D has its gradient penalty.
* ``spg_vton.joint`` (step 3): every network of both steps trained together from their registered
  weights (``model.init.*``, set by ``vton pipeline``), on the sum of both steps' losses; G1's
  parse now carries gradient from the try-on terms.

Our choices where the paper is silent (FAMILIES.md §3): masks enter the GMMs as [-1, 1] images, as
CP-VTON's inputs; the garment worn, Ĉ_t, is composited on white like its real counterpart C_t, so
Dg and Dl cannot tell them apart by background; the face and hair masks of Dl come from the
target's ground-truth parse for real and fake alike; the ``id`` crops are 112x96 (SphereFace's
input), boxed from the predicted parse for the try-on (Eq. 15) and from the true parse for the
target, falling back to the target's head keypoints.

Adam 2e-4, betas (0, 0.999), weight decay 5e-4 for every network, as the paper's text reads (beta1
= 0 is unusual; it goes with the gradient penalty). The paper's batch sizes and step counts are
missing from the seed: batch 8, 50k / 100k / 30k steps are our choices (FAMILIES.md §3.4). Its
loss weights (lambda 10, 10, 20, 10, 10) are kept although some terms start over 10x the
adversarial ones (docs/families/spg_vton.md measures them).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import torch
from torch import nn

from vton_models.families.spg_vton.networks import HEADS, SPGDiscriminator, SPGGenerator, cwm_gmm
from vton_models.frozen_stages import FrozenStages
from vton_models.gan import ConditionalGAN, LazyLossNetwork, LazyPerceptual
from vton_models.losses import FaceIdentityLoss, conductible_cycle, focal_loss, gradient_penalty, l1_loss
from vton_models.networks.gmm import sample_garment
from vton_models.parse_stage import TargetParseStage
from vton_models.random_erasing import random_erase
from vton_models.recipe import (
    NetworkSpec,
    OptimizerSpec,
    Phase,
    Recipe,
    RecipeContext,
    bool_option,
    choice_option,
    int_option,
)
from vton_models.representation.base import Representation
from vton_models.representation.cpvton import UPPER_GARMENT_LABELS
from vton_models.representation.multipose import MULTIPOSE
from vton_models.representation.parse import NUM_LIP_LABELS
from vton_models.representation.regions import FACE_HAIR_LABELS, crop_boxes, face_boxes
from vton_models.visual import multipose_panels, palette_image, pose_image

Tensor = torch.Tensor

#: The paper: Adam, lr 2e-4, betas (0, 0.999), weight decay 5e-4, for every G and D.
SPG_ADAM = OptimizerSpec(lr=2e-4, betas=(0.0, 0.999), weight_decay=5e-4, schedule="constant")
FACE, HAIR = 13, 2
#: What S'_s drops from the source parse: hair, face and the garment (upper clothes, dress, coat).
REMOVED_FROM_SOURCE: tuple[int, ...] = (HAIR, FACE, *UPPER_GARMENT_LABELS)
#: SphereFace's input, height x width: what the ``id`` term crops the heads to.
ID_CROP = (112, 96)
#: ``model.face_id``: the face network of the ``id`` term (``vton_models.weights`` names), or none.
FACE_ID_BACKBONES = ("sphereface20a", "none")
MASK_REG_TARGETS = ("ones", "warped_mask")


def source_semantics(src_parse_onehot: Tensor) -> tuple[Tensor, Tensor]:
    """(S'_s, A_s): the source parse with hair, face and garment moved to the background (20), and
    the source's face and hair masks (2), from its one-hot."""
    removed = list(REMOVED_FROM_SOURCE)
    reduced = src_parse_onehot.clone()
    reduced[:, 0] += src_parse_onehot[:, removed].sum(1)
    reduced[:, removed] = 0
    return reduced, src_parse_onehot[:, [FACE, HAIR]]


def semantic_condition(x: Mapping[str, Tensor]) -> Tensor:
    """G1's input (41 channels) and D1's condition: [S'_s, A_s, M_C, P_t]."""
    reduced, face_hair = source_semantics(x["src_parse_onehot"])
    return torch.cat([reduced, face_hair, x["cloth_mask"], x["tgt_pose"]], 1)


def without_garment(parse: Tensor) -> Tensor:
    """Ŝ'_t: a (B, 20, H, W) parse distribution with the garment channels zeroed (not renormalised:
    G2 must draw the garment where the parse says nothing)."""
    keep = torch.ones(parse.shape[1], dtype=parse.dtype, device=parse.device)
    keep[list(UPPER_GARMENT_LABELS)] = 0
    return parse * keep.view(1, -1, 1, 1)


def on_white(image: Tensor, mask: Tensor) -> Tensor:
    """``image`` where ``mask`` is, white elsewhere (C_t's convention, CP-VTON's)."""
    return image * mask + (1 - mask)


def id_boxes(square: Tensor) -> Tensor:
    """Head boxes (B, 4) narrowed about their centre to SphereFace's 112:96, so a crop is not stretched."""
    cx = (square[:, 0] + square[:, 2]) / 2
    half = (square[:, 2] - square[:, 0]) * (ID_CROP[1] / ID_CROP[0]) / 2
    return torch.stack([cx - half, square[:, 1], cx + half, square[:, 3]], 1)


def head_region(parse: Tensor) -> Tensor:
    """(B, H, W) bool: where a parse distribution (or one-hot) says hair + face."""
    return parse[:, list(FACE_HAIR_LABELS)].sum(1) > 0.5


def _check_common_options(recipe: Recipe) -> None:
    o = recipe.model_options
    choice_option(o, "head", HEADS)
    for key in ("num_D", "ngf", "ndf"):
        int_option(o, key)
    h, w = recipe.context.image_size
    if h % 16 or w % 16:
        raise ValueError(f"recipe '{recipe.name}': image_size {(h, w)} must be divisible by 16 "
                         "(the generators downsample three times, the GMMs' extractors four)")


class _SPGRecipe(FrozenStages, Recipe):
    representation: ClassVar[Representation] = MULTIPOSE
    batch_fields: ClassVar[dict[str, int]] = {
        "src_person": 3, "src_parse_onehot": NUM_LIP_LABELS, "src_agnostic": 3, "cloth": 3, "cloth_mask": 1,
        "tgt_pose": 18, "person": 3, "tgt_parse_onehot": NUM_LIP_LABELS, "tgt_cloth_region": 1, "tgt_cloth_rgb": 3}

    def _fields(self, batch: Mapping[str, Tensor]) -> dict[str, Tensor]:
        x = {**self.checked_fields(batch), "parse": batch["parse"]}
        if "face_box_tgt" in batch:
            x["face_box_tgt"] = batch["face_box_tgt"]
        x["sem_condition"] = semantic_condition(x)
        return x

    def sample_panels(self, inputs: Mapping[str, Tensor], generated: Tensor) -> dict[str, Tensor]:
        return multipose_panels(inputs, generated, self.target(inputs))


# ------------------------------------------------------------------------------ step 1: G1


class SPGSemanticRecipe(TargetParseStage, _SPGRecipe):
    name: ClassVar[str] = "spg_vton.sem"
    batch_fields: ClassVar[dict[str, int]] = {
        "src_person": 3, "src_parse_onehot": NUM_LIP_LABELS, "cloth": 3, "cloth_mask": 1, "tgt_pose": 18,
        "tgt_parse_onehot": NUM_LIP_LABELS}
    networks: ClassVar[tuple[NetworkSpec, ...]] = (NetworkSpec("G", "generator", SPG_ADAM),
                                                   NetworkSpec("D", "discriminator", SPG_ADAM))
    phases: ClassVar[tuple[Phase, ...]] = (Phase("D", ("D",), "d_losses"), Phase("G", ("G",), "g_losses"))
    default_loss_weights: ClassVar[dict[str, float]] = {
        "s_focal": 10.0, "s_recon": 1.0, "s_adv": 1.0, "d_real": 1.0, "d_fake": 1.0, "gp": 10.0}
    default_model_options: ClassVar[dict[str, Any]] = {
        "head": "strict",  # Table I's ending kept (Conv9 ReLU, Conv10 tanh, Conv11 1x1) | plain
        "num_D": 2,        # discriminator scales (pix2pixHD's default; the paper gives none)
        "ngf": 64,         # generator width (Table I: 64, 128, 256, 512)
        "ndf": 32,         # discriminator width (Table I: 32, 64)
    }

    def __init__(self, context: RecipeContext) -> None:
        super().__init__(context)
        _check_common_options(self)
        self.gan = ConditionalGAN(context.gan_mode)  # D1 sees [parse; condition]

    def build_networks(self) -> dict[str, nn.Module]:
        o = self.model_options
        return {"G": SPGGenerator(41, NUM_LIP_LABELS, o["head"], o["ngf"]),
                "D": SPGDiscriminator(41 + NUM_LIP_LABELS, o["num_D"], o["ndf"])}

    def inputs(self, batch: Mapping[str, Tensor]) -> dict[str, Tensor]:
        x = {**self.checked_fields(batch), "parse": batch["parse"]}
        x["sem_condition"] = semantic_condition(x)
        return x

    def logits(self, G: nn.Module, x: Mapping[str, Tensor]) -> Tensor:
        return G(x["sem_condition"]).float()

    def d_losses(self, nets: Mapping[str, nn.Module], inputs: Mapping[str, Tensor]) -> dict[str, Tensor]:
        fake = self.fakes_for_discriminator(lambda: torch.softmax(self.logits(nets["G"], inputs), 1))
        return self.discriminator_terms(nets["D"], fake, inputs)

    def discriminator_terms(self, D: nn.Module, fake: Tensor, inputs: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """D1's ``d_real``, ``d_fake`` and ``gp`` for a detached predicted parse."""
        real, cond = inputs["tgt_parse_onehot"], inputs["sem_condition"]
        terms = self.gan.d_terms(D, fake, real, cond)
        if self.loss_weights["gp"] != 0:
            terms["gp"] = gradient_penalty(D, real, fake, cond)
        return terms

    def generator_terms(self, D: nn.Module | None, logits: Tensor, inputs: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """Eq. 2 on G1's logits (``D`` None: no adversarial term)."""
        soft = torch.softmax(logits, 1)
        terms = {"s_focal": focal_loss(logits, inputs["parse"]), "s_recon": l1_loss(soft, inputs["tgt_parse_onehot"])}
        if D is not None and self.loss_weights["s_adv"] != 0:
            terms["s_adv"], _ = self.gan.g_terms(D, soft, inputs["sem_condition"])
        return terms

    def g_losses(self, nets: Mapping[str, nn.Module], inputs: Mapping[str, Tensor]) -> tuple[dict[str, Tensor], Tensor]:
        logits = self.logits(nets["G"], inputs)
        self.keep_for_discriminator(torch.softmax(logits, 1))  # generator_terms' soft parse, as D's phase makes it
        return self.generator_terms(nets.get("D"), logits, inputs), palette_image(logits.detach())

    def sample_panels(self, inputs: Mapping[str, Tensor], generated: Tensor) -> dict[str, Tensor]:
        return {"source": inputs["src_person"],
                "source parse w/o garment": palette_image(inputs["sem_condition"][:, :NUM_LIP_LABELS]),
                "cloth": inputs["cloth"], "target pose": pose_image(inputs["tgt_pose"]),
                "predicted parse": generated, "target parse": self.target(inputs)}


# --------------------------------------------------------------------- step 2: G2, CWM, G3


class SPGTryOnRecipe(_SPGRecipe):
    """The try-on step: G2, the CWM's two GMMs and G3 on the frozen G1's parse, judged by D2, Dg, Dl."""

    name: ClassVar[str] = "spg_vton.tryon"
    networks: ClassVar[tuple[NetworkSpec, ...]] = (
        NetworkSpec("G2", "generator", SPG_ADAM), NetworkSpec("GMM1", "generator", SPG_ADAM),
        NetworkSpec("GMM2", "generator", SPG_ADAM), NetworkSpec("G3", "generator", SPG_ADAM),
        NetworkSpec("D2", "discriminator", SPG_ADAM), NetworkSpec("Dg", "discriminator", SPG_ADAM),
        NetworkSpec("Dl", "discriminator", SPG_ADAM))
    phases: ClassVar[tuple[Phase, ...]] = (Phase("D", ("D2", "Dg", "Dl"), "d_losses"),
                                           Phase("G", ("G2", "GMM1", "GMM2", "G3"), "g_losses"))
    #: The paper's lambdas (lambda1 = lambda2 = lambda4 = lambda5 = 10, lambda3 = 20); the gradient
    #: penalties' 10 is ours (WGAN-GP's).
    default_loss_weights: ClassVar[dict[str, float]] = {
        "p_adv": 1.0, "p_recon": 10.0, "p_perc": 10.0, "cond": 20.0, "t_recon": 10.0, "t_perc": 10.0,
        "g_adv": 1.0, "l_adv": 1.0, "id": 10.0,
        **{f"{d}_{t}": 1.0 for d in ("d2", "dg", "dl") for t in ("real", "fake")},
        **{f"{d}_gp": 10.0 for d in ("d2", "dg", "dl")}}
    default_model_options: ClassVar[dict[str, Any]] = {
        **SPGSemanticRecipe.default_model_options,
        "gmm_ngf": 64,                  # the CWM GMMs' feature width (CP-VTON's 64)
        "grid_size": 5,                 # TPS control points per side (CP-VTON's 5)
        "align_corners": False,         # grid_sample convention of the warps
        "mask_reg_target": "ones",      # ones (the paper, after CP-VTON's paper) | warped_mask (CP-VTON's code)
        "erase": True,                  # random erasing of G2's person before G3, in training (the paper)
        "face_id": "sphereface20a",     # the id term's face network (the paper's SphereFace) | none
        "sem": None,                    # models:/... of a registered spg_vton.sem stage (required)
    }
    consumes: ClassVar[dict[str, str]] = {"sem": "spg_vton.sem"}
    stage_classes: ClassVar[dict[str, type[Recipe]]] = {"sem": SPGSemanticRecipe}

    def __init__(self, context: RecipeContext) -> None:
        super().__init__(context)
        o = self.model_options
        _check_common_options(self)
        int_option(o, "gmm_ngf")
        int_option(o, "grid_size", 2)
        bool_option(o, "align_corners")
        bool_option(o, "erase")
        choice_option(o, "mask_reg_target", MASK_REG_TARGETS)
        choice_option(o, "face_id", FACE_ID_BACKBONES)
        if o["face_id"] == "none" and self.loss_weights["id"] != 0:
            raise ValueError(f"recipe '{self.name}': model.face_id=none leaves the id term without a face "
                             f"network; set loss.weights.id=0 (it is {self.loss_weights['id']})")
        self.gan = ConditionalGAN(context.gan_mode)  # every D sees [image; condition]
        self.perceptual = LazyPerceptual()
        self.face_id = LazyLossNetwork(lambda: FaceIdentityLoss(o["face_id"]))

    def required_stages(self) -> dict[str, str]:
        return {"sem": "G2 draws the person on the parse G1 predicts (the paper's step 2, G1 frozen)"}

    def required_weights(self) -> tuple[str, ...]:
        w = self.loss_weights
        return (("vgg19",) if w["p_perc"] or w["t_perc"] else ()) + ((self.model_options["face_id"],) if w["id"] else ())

    def build_networks(self) -> dict[str, nn.Module]:
        o, size = self.model_options, tuple(self.context.image_size)
        pose = 18
        return {
            "G2": SPGGenerator(NUM_LIP_LABELS + pose + 3 + 3, 4, o["head"], o["ngf"]),
            "GMM1": cwm_gmm(size, o["grid_size"], o["gmm_ngf"]),
            "GMM2": cwm_gmm(size, o["grid_size"], o["gmm_ngf"]),
            "G3": SPGGenerator(3 + 3 + pose, 4, o["head"], o["ngf"]),
            "D2": SPGDiscriminator(3 + NUM_LIP_LABELS + 3 + pose + 3, o["num_D"], o["ndf"]),
            "Dg": SPGDiscriminator(3 + 3 + pose + 3, o["num_D"], o["ndf"]),
            "Dl": SPGDiscriminator(3 + 3 + 3 + pose + 3, o["num_D"], o["ndf"]),
        }

    def inputs(self, batch: Mapping[str, Tensor]) -> dict[str, Tensor]:
        self.require_attached(("sem",))
        x = self._fields(batch)
        sem, G1 = self.attached("sem", x["cloth"].device)
        with torch.no_grad():
            x["soft_parse"] = torch.softmax(sem.logits(G1, x), 1)
        return x

    # ------------------------------------------------------------------------- forward

    def synthesize(self, nets: Mapping[str, nn.Module], x: Mapping[str, Tensor], parse: Tensor,
                   eraser: torch.Generator | None = None) -> dict[str, Tensor]:
        """SPM-2, the CWM and the TSM on the parse distribution ``parse`` (Ŝ_t): every image the
        losses read. With an ``eraser`` (training only), G3 reads G2's person randomly erased."""
        ac = self.model_options["align_corners"]
        cloth, cloth_mask, pose = x["cloth"], x["cloth_mask"], x["tgt_pose"]
        out = nets["G2"](torch.cat([without_garment(parse).to(cloth.dtype), pose, cloth, x["src_agnostic"]], 1)).float()
        coarse, coarse_mask = torch.tanh(out[:, :3]), torch.sigmoid(out[:, 3:4])
        # G2's mask enters GMM1 detached: through the correlation's feature normalisation the warp's
        # gradient w.r.t. its input reaches G2 at 1e3-1e6 x G2's own terms at initialisation
        # (tests/test_spg_vton.py); G2's mask is trained by p_recon, the CWM follows it.
        _, grid = nets["GMM1"](coarse_mask.detach().to(cloth.dtype) * 2 - 1, cloth_mask * 2 - 1)
        warped, warped_mask = sample_garment(cloth, cloth_mask, grid, ac)
        _, grid_back = nets["GMM2"](cloth_mask * 2 - 1, warped_mask * 2 - 1)
        cycled = sample_garment(warped, warped_mask, grid_back, ac)[0]
        seen = coarse if eraser is None else random_erase(coarse, eraser)
        out = nets["G3"](torch.cat([seen.to(cloth.dtype), warped, pose], 1)).float()
        rendered, mask = torch.tanh(out[:, :3]), torch.sigmoid(out[:, 3:4])
        warped, warped_mask = warped.float(), warped_mask.float()
        tryon = warped * mask + rendered * (1 - mask)
        return {"coarse": coarse, "coarse_mask": coarse_mask, "warped": warped, "warped_mask": warped_mask,
                "cycled": cycled.float(), "tryon": tryon, "composition": mask, "worn": on_white(warped, mask)}

    def eraser(self, recipe: Recipe) -> torch.Generator | None:
        """The random-erasing generator of ``recipe``'s current training micro-batch (None outside
        training, or with ``model.erase=false``)."""
        return recipe.training_generator() if self.model_options["erase"] else None

    def _training_forward(self, nets: Mapping[str, nn.Module], x: Mapping[str, Tensor]) -> dict[str, Tensor]:
        return self.synthesize(nets, x, x["soft_parse"], self.eraser(self))

    # ------------------------------------------------------------------------- discriminators

    def _d_views(self, y: Mapping[str, Tensor], x: Mapping[str, Tensor], parse: Tensor) -> dict[str, tuple]:
        """Per D: (fake image part, real image part, condition), as the paper concatenates them."""
        person, worn_real = x["person"], x["tgt_cloth_rgb"]
        face, hair = x["tgt_parse_onehot"][:, FACE:FACE + 1], x["tgt_parse_onehot"][:, HAIR:HAIR + 1]
        scene = torch.cat([x["tgt_pose"], x["src_agnostic"]], 1)
        tryon, worn = y["tryon"], y["worn"]
        return {
            "d2": (y["coarse"], person, torch.cat([parse.float(), x["cloth"], scene], 1)),
            "dg": (torch.cat([tryon, worn], 1), torch.cat([person, worn_real], 1), scene),
            "dl": (torch.cat([tryon * face, tryon * hair, worn], 1), torch.cat([person * face, person * hair, worn_real], 1),
                   scene),
        }

    def discriminator_terms(self, nets: Mapping[str, nn.Module], y: Mapping[str, Tensor], x: Mapping[str, Tensor],
                            parse: Tensor) -> dict[str, Tensor]:
        """``d2_real`` ... ``dl_gp`` for detached images ``y``."""
        terms: dict[str, Tensor] = {}
        for key, (fake, real, cond) in self._d_views(y, x, parse).items():
            D = nets[_D_NAMES[key]]
            for term, value in self.gan.d_terms(D, fake.detach(), real, cond.detach()).items():
                terms[f"{key}_{term[2:]}"] = value  # d_real -> d2_real
            if self.loss_weights[f"{key}_gp"] != 0:
                terms[f"{key}_gp"] = gradient_penalty(D, real, fake.detach(), cond)
        return terms

    def d_losses(self, nets: Mapping[str, nn.Module], inputs: Mapping[str, Tensor]) -> dict[str, Tensor]:
        y = self.fakes_for_discriminator(lambda: self._training_forward(nets, inputs))
        return self.discriminator_terms(nets, y, inputs, inputs["soft_parse"])

    # ------------------------------------------------------------------------- generators

    def generator_terms(self, nets: Mapping[str, nn.Module], y: Mapping[str, Tensor], x: Mapping[str, Tensor],
                        parse: Tensor) -> dict[str, Tensor]:
        """Eqs. 5-6 (G2), 8-9 (CWM) and 11-16 (G3) on the images ``y`` synthesised from ``parse``."""
        w, person = self.loss_weights, x["person"]
        mask_target = (torch.ones_like(y["composition"]) if self.model_options["mask_reg_target"] == "ones"
                       else y["warped_mask"])
        terms = {
            "p_recon": l1_loss(y["coarse"], person) + l1_loss(y["coarse_mask"], x["tgt_cloth_region"]),
            "cond": conductible_cycle(y["warped"], x["tgt_cloth_rgb"], y["cycled"], x["cloth"]),
            "t_recon": 2 * l1_loss(y["tryon"], person) + 0.5 * l1_loss(y["composition"], mask_target),
        }
        real_features = self.perceptual.target_features(person) if w["p_perc"] or w["t_perc"] else None  # once for both
        if w["p_perc"]:
            terms["p_perc"] = self.perceptual(y["coarse"], person, real_features)
        if w["t_perc"]:
            terms["t_perc"] = self.perceptual(y["tryon"], person, real_features)
        if w["id"]:
            terms["id"] = self.face_id(*self.id_crops(y["tryon"], x, parse))
        for key, (fake, _, cond) in self._d_views(y, x, parse).items():
            term = {"d2": "p_adv", "dg": "g_adv", "dl": "l_adv"}[key]
            if _D_NAMES[key] in nets and w[term] != 0:
                terms[term], _ = self.gan.g_terms(nets[_D_NAMES[key]], fake, cond)
        return terms

    def id_crops(self, tryon: Tensor, x: Mapping[str, Tensor], parse: Tensor) -> tuple[Tensor, Tensor]:
        """(the try-on's head, the target's head), 112x96: boxed from the predicted parse and the
        true parse respectively (Eq. 15), each falling back to the target's head keypoints."""
        fallback = x["face_box_tgt"]
        fake_box = id_boxes(face_boxes(head_region(parse.detach()), fallback))
        real_box = id_boxes(face_boxes(head_region(x["tgt_parse_onehot"]), fallback))
        return crop_boxes(tryon, fake_box, ID_CROP), crop_boxes(x["person"], real_box, ID_CROP)

    def g_losses(self, nets: Mapping[str, nn.Module], inputs: Mapping[str, Tensor]) -> tuple[dict[str, Tensor], Tensor]:
        y = self.keep_for_discriminator(self._training_forward(nets, inputs))
        return self.generator_terms(nets, y, inputs, inputs["soft_parse"]), y["tryon"].detach()

    def generate(self, nets: Mapping[str, nn.Module], inputs: Mapping[str, Tensor]) -> Tensor:
        return self.synthesize(nets, inputs, inputs["soft_parse"])["tryon"]

    def validation_metrics(self, nets: Mapping[str, nn.Module], inputs: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """Per image: the CWM's warp against the garment as worn, and G2's coarse person against the
        target (G3's try-on is the image metrics)."""
        y = self.synthesize(nets, inputs, inputs["soft_parse"])
        per_image = lambda a, b: (a.float() - b.float()).abs().flatten(1).mean(1)  # noqa: E731
        return {"warp_l1": per_image(y["warped"], inputs["tgt_cloth_rgb"]),
                "coarse_l1": per_image(y["coarse"], inputs["person"])}


#: The try-on step's discriminators by the prefix of their terms.
_D_NAMES = {"d2": "D2", "dg": "Dg", "dl": "Dl"}


# ------------------------------------------------------------------------------ step 3: joint


class SPGJointRecipe(_SPGRecipe):
    """Every network of steps 1 and 2 trained together from their registered weights on the sum of
    both steps' losses (D1's terms renamed ``d1_*``). G1's parse is differentiable all the way into
    G2 and D2's condition, so the try-on terms now train G1 too."""

    name: ClassVar[str] = "spg_vton.joint"
    networks: ClassVar[tuple[NetworkSpec, ...]] = (
        NetworkSpec("G1", "generator", SPG_ADAM), *SPGTryOnRecipe.networks[:4],
        NetworkSpec("D1", "discriminator", SPG_ADAM), *SPGTryOnRecipe.networks[4:])
    phases: ClassVar[tuple[Phase, ...]] = (Phase("D", ("D1", "D2", "Dg", "Dl"), "d_losses"),
                                           Phase("G", ("G1", "G2", "GMM1", "GMM2", "G3"), "g_losses"))
    default_loss_weights: ClassVar[dict[str, float]] = {
        "s_focal": 10.0, "s_recon": 1.0, "s_adv": 1.0, "d1_real": 1.0, "d1_fake": 1.0, "d1_gp": 10.0,
        **SPGTryOnRecipe.default_loss_weights}
    default_model_options: ClassVar[dict[str, Any]] = {
        k: v for k, v in SPGTryOnRecipe.default_model_options.items() if k != "sem"}
    initializes: ClassVar[dict[str, str]] = {
        "G1": "spg_vton.sem#G", "D1": "spg_vton.sem#D",
        **{n: "spg_vton.tryon" for n in ("G2", "GMM1", "GMM2", "G3", "D2", "Dg", "Dl")}}
    #: The semantic step's D terms under their joint names.
    _D1_TERMS = {"d_real": "d1_real", "d_fake": "d1_fake", "gp": "d1_gp"}

    def __init__(self, context: RecipeContext) -> None:
        super().__init__(context)
        o, w = self.model_options, self.loss_weights
        sem_weights = {**{k: w[k] for k in ("s_focal", "s_recon", "s_adv")},
                       **{k: w[v] for k, v in self._D1_TERMS.items()}}
        sem_options = {k: o[k] for k in SPGSemanticRecipe.default_model_options}
        self.sem = SPGSemanticRecipe(RecipeContext(context.image_size, sem_options, sem_weights, context.gan_mode))
        tryon_weights = {k: w[k] for k in SPGTryOnRecipe.default_loss_weights}
        self.tryon = SPGTryOnRecipe(RecipeContext(context.image_size, dict(o), tryon_weights, context.gan_mode))

    def required_weights(self) -> tuple[str, ...]:
        return self.tryon.required_weights()

    def build_networks(self) -> dict[str, nn.Module]:
        sem = self.sem.build_networks()
        return {"G1": sem["G"], "D1": sem["D"], **self.tryon.build_networks()}

    def inputs(self, batch: Mapping[str, Tensor]) -> dict[str, Tensor]:
        return self._fields(batch)

    def forward(self, nets: Mapping[str, nn.Module], x: Mapping[str, Tensor],
                training: bool = True) -> tuple[Tensor, Tensor, dict[str, Tensor]]:
        """(G1's logits, its parse distribution, the try-on step's images on it)."""
        logits = self.sem.logits(nets["G1"], x)
        parse = torch.softmax(logits, 1)
        return logits, parse, self.tryon.synthesize(nets, x, parse, self.tryon.eraser(self) if training else None)

    def d_losses(self, nets: Mapping[str, nn.Module], inputs: Mapping[str, Tensor]) -> dict[str, Tensor]:
        _, parse, y = self.fakes_for_discriminator(lambda: self.forward(nets, inputs))
        terms = {self._D1_TERMS[k]: v for k, v in self.sem.discriminator_terms(nets["D1"], parse, inputs).items()}
        return {**terms, **self.tryon.discriminator_terms(nets, y, inputs, parse)}

    def g_losses(self, nets: Mapping[str, nn.Module], inputs: Mapping[str, Tensor]) -> tuple[dict[str, Tensor], Tensor]:
        logits, parse, y = self.keep_for_discriminator(self.forward(nets, inputs))
        terms = self.sem.generator_terms(nets.get("D1"), logits, inputs)
        return {**terms, **self.tryon.generator_terms(nets, y, inputs, parse)}, y["tryon"].detach()

    def generate(self, nets: Mapping[str, nn.Module], inputs: Mapping[str, Tensor]) -> Tensor:
        return self.forward(nets, inputs, training=False)[2]["tryon"]

    def validation_metrics(self, nets: Mapping[str, nn.Module], inputs: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """The try-on step's, plus how far G1's parse moves while the try-on terms train it."""
        parse = torch.softmax(self.sem.logits(nets["G1"], inputs), 1)
        x = {**inputs, "soft_parse": parse}
        scores = self.sem.validation_metrics({"G": nets["G1"]}, inputs)
        return {**self.tryon.validation_metrics(nets, x), **{f"parse_{k}": v for k, v in scores.items()}}
