"""Seed 000: the multimodal U-Net with self-attention and its PatchGAN, one stage."""

from vton_models.families.unet_sa.inputs import UNET_SA, UNET_SA_WITH_GMM
from vton_models.families.unet_sa.recipes import UnetSARecipe
from vton_models.family import Family

FAMILY = Family(
    name="unet_sa",
    paper="seed 000: U-Net + self-attention generator, PatchGAN discriminator (41-channel person representation)",
    recipes=(UnetSARecipe,),
    representations=(UNET_SA, UNET_SA_WITH_GMM),
)
