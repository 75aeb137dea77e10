"""Seed 004: SPG-VTON (Hu et al., IEEE TMM 2022): semantic prediction, cycle-consistent warping and
try-on synthesis with global and local discriminators, in the paper's three training steps. The
first step (``spg_vton.sem``) is here; the try-on and joint steps follow (issue 18)."""

from vton_models.families.spg_vton.recipes import SPGSemanticRecipe
from vton_models.family import Family
from vton_models.representation.multipose import MULTIPOSE

FAMILY = Family(
    name="spg_vton",
    paper="seed 004: SPG-VTON (Hu et al., IEEE TMM 2022), sem -> tryon -> joint (sem so far)",
    recipes=(SPGSemanticRecipe,),
    representations=(MULTIPOSE,),
)
