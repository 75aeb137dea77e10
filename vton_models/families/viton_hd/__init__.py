"""Seed 001: VITON-HD, three stages (segmentation, geometric matching, ALIAS synthesis) and the
try-on chain that runs them on a new garment."""

from vton_models.families.viton_hd import importer
from vton_models.families.viton_hd.chain import VitonHDTryOnRecipe
from vton_models.families.viton_hd.inputs import VITON_HD
from vton_models.families.viton_hd.recipes import VitonHDAliasRecipe, VitonHDGMMRecipe, VitonHDSegRecipe
from vton_models.family import Family

FAMILY = Family(
    name="viton_hd",
    paper="seed 001: VITON-HD (Choi et al., CVPR 2021), seg -> GMM -> ALIAS",
    recipes=(VitonHDSegRecipe, VitonHDGMMRecipe, VitonHDAliasRecipe, VitonHDTryOnRecipe),
    representations=(VITON_HD,),
    importer=importer,
    chain=VitonHDTryOnRecipe,
)
