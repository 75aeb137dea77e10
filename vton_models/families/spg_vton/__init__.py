"""Seed 004: SPG-VTON (Hu et al., IEEE TMM 2022): semantic prediction, cycle-consistent warping and
try-on synthesis with global and local discriminators, in the paper's three training steps:
``spg_vton.sem`` (G1), ``spg_vton.tryon`` (G2, the CWM's two GMMs and G3 on the frozen G1), then
``spg_vton.joint`` (all of them together from the registered weights)."""

from vton_models.families.spg_vton.recipes import SPGJointRecipe, SPGSemanticRecipe, SPGTryOnRecipe
from vton_models.family import Family
from vton_models.representation.multipose import MULTIPOSE

FAMILY = Family(
    name="spg_vton",
    paper="seed 004: SPG-VTON (Hu et al., IEEE TMM 2022), sem -> tryon -> joint",
    recipes=(SPGSemanticRecipe, SPGTryOnRecipe, SPGJointRecipe),
    representations=(MULTIPOSE,),
)
