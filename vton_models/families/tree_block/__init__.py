"""Seed 002: multi-pose try-on with Tree-Blocks ("Down to the last detail", Wang et al., ICME 2020):
parse transformation and cloth warping, then the appearance generator on both (Algorithm 1)."""

from vton_models.families.tree_block.recipes import TreeBlockAppearanceRecipe, TreeBlockGMMRecipe, TreeBlockParseRecipe
from vton_models.family import Family
from vton_models.representation.multipose import MULTIPOSE

FAMILY = Family(
    name="tree_block",
    paper="seed 002: multi-pose try-on with Tree-Blocks (Wang et al., ICME 2020), parse + gmm -> app",
    recipes=(TreeBlockParseRecipe, TreeBlockGMMRecipe, TreeBlockAppearanceRecipe),
    representations=(MULTIPOSE,),
)
