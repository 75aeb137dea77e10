"""Recipes of seed 004 (``spg_vton``, SPG-VTON, Hu et al., IEEE TMM 2022): multi-pose try-on from
MPV triplets (representation ``multipose``), trained in the paper's three steps (Sec. III-E).

* ``spg_vton.sem`` (step 1, the semantic prediction module's G1): the target's parse from the
  source's parse without hair, face and garment (S'_s), the source's face and hair masks (A_s), the
  cloth mask (M_C) and the target pose (P_t). Eq. 2: ``s_focal`` (focal loss, gamma 2, no class
  balance: the paper gives neither), ``s_recon`` (L1 of the softmax to the one-hot), LSGAN
  ``s_adv`` through D1 on [parse; condition], with WGAN-GP on D1 (``gp``, weight 10: "a gradient
  punishment strategy", no lambda given).

Adam 2e-4, betas (0, 0.999), weight decay 5e-4 for every network, as the paper's text reads (beta1
= 0 is unusual; it goes with the gradient penalty). The paper's batch sizes and step counts are
missing from the seed: batch 8 and 50k steps are our choices (FAMILIES.md §3.4).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import torch
from torch import nn

from vton_models.families.spg_vton.networks import HEADS, SPGDiscriminator, SPGGenerator
from vton_models.gan import ConditionalGAN
from vton_models.losses import focal_loss, gradient_penalty, l1_loss
from vton_models.parse_stage import TargetParseStage
from vton_models.recipe import NetworkSpec, OptimizerSpec, Phase, Recipe, RecipeContext
from vton_models.representation.base import Representation
from vton_models.representation.cpvton import UPPER_GARMENT_LABELS
from vton_models.representation.multipose import MULTIPOSE
from vton_models.representation.parse import NUM_LIP_LABELS
from vton_models.visual import palette_image, pose_image

Tensor = torch.Tensor

#: The paper: Adam, lr 2e-4, betas (0, 0.999), weight decay 5e-4, for every G and D.
SPG_ADAM = OptimizerSpec(lr=2e-4, betas=(0.0, 0.999), weight_decay=5e-4, schedule="constant")
FACE, HAIR = 13, 2
#: What S'_s drops from the source parse: hair, face and the garment (upper clothes, dress, coat).
REMOVED_FROM_SOURCE: tuple[int, ...] = (HAIR, FACE, *UPPER_GARMENT_LABELS)


def source_semantics(src_parse_onehot: Tensor) -> tuple[Tensor, Tensor]:
    """(S'_s, A_s): the source parse with hair, face and garment moved to the background (20), and
    the source's face and hair masks (2), from its one-hot."""
    removed = list(REMOVED_FROM_SOURCE)
    reduced = src_parse_onehot.clone()
    reduced[:, 0] += src_parse_onehot[:, removed].sum(1)
    reduced[:, removed] = 0
    return reduced, src_parse_onehot[:, [FACE, HAIR]]


class SPGSemanticRecipe(TargetParseStage, Recipe):
    name: ClassVar[str] = "spg_vton.sem"
    representation: ClassVar[Representation] = MULTIPOSE
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
        o = self.model_options
        if o["head"] not in HEADS:
            raise ValueError(f"model.head: {o['head']!r} is not one of {list(HEADS)}")
        for key in ("num_D", "ngf", "ndf"):
            if isinstance(o[key], bool) or not isinstance(o[key], int) or o[key] < 1:
                raise ValueError(f"model.{key}: expected an integer >= 1, got {o[key]!r}")
        h, w = context.image_size
        if h % 8 or w % 8:
            raise ValueError(f"recipe '{self.name}': image_size {(h, w)} must be divisible by 8 (three downsamplings)")
        self.gan = ConditionalGAN(context.gan_mode)  # D1 sees [parse; condition]

    def build_networks(self) -> dict[str, nn.Module]:
        o = self.model_options
        return {"G": SPGGenerator(41, NUM_LIP_LABELS, o["head"], o["ngf"]),
                "D": SPGDiscriminator(41 + NUM_LIP_LABELS, o["num_D"], o["ndf"])}

    def inputs(self, batch: Mapping[str, Tensor]) -> dict[str, Tensor]:
        x = {**self.checked_fields(batch), "parse": batch["parse"]}
        reduced, face_hair = source_semantics(x["src_parse_onehot"])
        x["sem_condition"] = torch.cat([reduced, face_hair, x["cloth_mask"], x["tgt_pose"]], 1)
        return x

    def logits(self, G: nn.Module, x: Mapping[str, Tensor]) -> Tensor:
        return G(x["sem_condition"]).float()

    def d_losses(self, nets: Mapping[str, nn.Module], inputs: Mapping[str, Tensor]) -> dict[str, Tensor]:
        with torch.no_grad():
            fake = torch.softmax(self.logits(nets["G"], inputs), 1)
        real, cond = inputs["tgt_parse_onehot"], inputs["sem_condition"]
        terms = self.gan.d_terms(nets["D"], fake, real, cond)
        if self.loss_weights["gp"] != 0:
            terms["gp"] = gradient_penalty(nets["D"], real, fake, cond)
        return terms

    def g_losses(self, nets: Mapping[str, nn.Module], inputs: Mapping[str, Tensor]) -> tuple[dict[str, Tensor], Tensor]:
        logits = self.logits(nets["G"], inputs)
        soft = torch.softmax(logits, 1)
        terms = {"s_focal": focal_loss(logits, inputs["parse"]), "s_recon": l1_loss(soft, inputs["tgt_parse_onehot"])}
        if "D" in nets and self.loss_weights["s_adv"] != 0:
            terms["s_adv"], _ = self.gan.g_terms(nets["D"], soft, inputs["sem_condition"])
        return terms, palette_image(logits.detach())


    def sample_panels(self, inputs: Mapping[str, Tensor], generated: Tensor) -> list[Tensor]:
        """source | S'_s | cloth | target pose | predicted parse | target parse."""
        return [inputs["src_person"], palette_image(inputs["sem_condition"][:, :NUM_LIP_LABELS]), inputs["cloth"],
                pose_image(inputs["tgt_pose"]), generated, self.target(inputs)]
