"""A family defined inside the tests: two generators and two discriminators, one phase stepping both
generators, one generator on AdamW with weight decay and a linear-decay schedule.

It runs on the ``unet_sa`` representation (the synthetic shards' batches) so it needs no data of its
own. G1 paints a coarse person from the 41-channel input; G2 refines G1's output (G2's loss reaches
G1 through it: one backward into two stepped networks). D1, a spectral-norm PatchGAN, judges G2's
image beside the agnostic person; D2, a plain conv net, judges G1's coarse image alone.
"""

from __future__ import annotations

from typing import Any, ClassVar, Mapping

import torch
from torch import nn

from vton_models.families.unet_sa.inputs import UNET_SA
from vton_models.gan import ConditionalGAN
from vton_models.losses import GANLoss, l1_loss
from vton_models.networks.patchgan import PatchGANDiscriminator
from vton_models.recipe import NetworkSpec, OptimizerSpec, Phase, Recipe, RecipeContext

Tensor = torch.Tensor


def _net(cin: int, cout: int, width: int = 8) -> nn.Sequential:
    # No bias before the norm: it would have zero gradient, which Adam turns into rounding-noise updates.
    return nn.Sequential(nn.Conv2d(cin, width, 3, padding=1, bias=False), nn.InstanceNorm2d(width, affine=True), nn.ReLU(),
                         nn.Conv2d(width, cout, 3, padding=1), nn.Tanh())


class TwinRecipe(Recipe):
    name: ClassVar[str] = "twin_test"
    networks: ClassVar[tuple[NetworkSpec, ...]] = (
        NetworkSpec("G1", "generator"),
        NetworkSpec("G2", "generator", OptimizerSpec(type="adamw", lr=5e-4, weight_decay=0.05,
                                                     schedule="linear_decay(1,4)")),
        NetworkSpec("D1", "discriminator"),
        NetworkSpec("D2", "discriminator"),
    )
    phases: ClassVar[tuple[Phase, ...]] = (Phase("D", ("D1", "D2"), "d_losses"),
                                           Phase("G", ("G1", "G2"), "g_losses"))
    default_loss_weights: ClassVar[dict[str, float]] = {
        "l1": 10.0, "l1_coarse": 5.0, "adv1": 1.0, "adv2": 1.0,
        "d1_real": 1.0, "d1_fake": 1.0, "d2_real": 1.0, "d2_fake": 1.0}
    representation = UNET_SA
    batch_fields: ClassVar[dict[str, int]] = {"inputs": 41, "person": 3, "agnostic": 3, "cloth": 3}
    default_model_options: ClassVar[dict[str, Any]] = {"width": 8}

    def __init__(self, context: RecipeContext) -> None:
        super().__init__(context)
        self.gan = ConditionalGAN(context.gan_mode)
        self.plain = GANLoss(context.gan_mode)

    def build_networks(self) -> dict[str, nn.Module]:
        w = self.model_options["width"]
        d2 = nn.Sequential(nn.Conv2d(3, w, 4, 2, 1), nn.LeakyReLU(0.2), nn.Conv2d(w, 1, 3, padding=1))
        return {"G1": _net(41, 3, w), "G2": _net(3 + 41, 3, w),
                "D1": PatchGANDiscriminator(input_channels=6, ndf=w), "D2": d2}

    def inputs(self, batch: Mapping[str, Tensor]) -> dict[str, Tensor]:
        return {k: batch[k] for k in self.batch_fields}

    def _generate_both(self, nets: Mapping[str, nn.Module], x: Mapping[str, Tensor]) -> tuple[Tensor, Tensor]:
        coarse = nets["G1"](x["inputs"])
        return coarse, nets["G2"](torch.cat([coarse, x["inputs"]], 1))

    def d_losses(self, nets: Mapping[str, nn.Module], x: Mapping[str, Tensor]) -> dict[str, Tensor]:
        with torch.no_grad():
            coarse, fine = self._generate_both(nets, x)
        d1 = self.gan.d_terms(nets["D1"], fine, x["person"], x["agnostic"])
        scores = nets["D2"](torch.cat([coarse, x["person"]], 0))
        fake2, real2 = scores.chunk(2, 0)
        return {"d1_real": d1["d_real"], "d1_fake": d1["d_fake"],
                "d2_real": self.plain(real2, True), "d2_fake": self.plain(fake2, False)}

    def g_losses(self, nets: Mapping[str, nn.Module], x: Mapping[str, Tensor]) -> tuple[dict[str, Tensor], Tensor]:
        coarse, fine = self._generate_both(nets, x)
        adv1, _ = self.gan.g_terms(nets["D1"], fine, x["agnostic"])
        terms = {"l1": l1_loss(fine, x["person"]), "l1_coarse": l1_loss(coarse, x["person"]), "adv1": adv1,
                 "adv2": self.plain(nets["D2"](coarse), True, for_discriminator=False)}
        return terms, fine

    def generate(self, nets: Mapping[str, nn.Module], inputs: Mapping[str, Tensor]) -> Tensor:
        return self._generate_both(nets, inputs)[1]

    def sample_panels(self, inputs: Mapping[str, Tensor], generated: Tensor) -> dict[str, Tensor]:
        return {"agnostic": inputs["agnostic"], "cloth": inputs["cloth"], "generated": generated,
                "ground truth": inputs["person"]}


def registered() -> type[TwinRecipe]:
    """Register the family's recipe (idempotent: test modules and Ray workers each call it)."""
    from vton_models.registry import register

    return register(TwinRecipe)
