"""Seed 002: multi-pose try-on with Tree-Blocks ("Down to the last detail", Wang et al., ICME 2020),
Algorithm 1 as five stages: parse transformation and cloth warping, the appearance generator on
both, face refinement, then parse net, GMM and appearance generator trained jointly."""

from vton_models.families.tree_block.recipes import (
    TreeBlockAppearanceRecipe,
    TreeBlockFaceRecipe,
    TreeBlockGMMRecipe,
    TreeBlockJointRecipe,
    TreeBlockParseRecipe,
)
from vton_models.family import Family
from vton_models.representation.multipose import MULTIPOSE

FAMILY = Family(
    name="tree_block",
    paper="seed 002: multi-pose try-on with Tree-Blocks (Wang et al., ICME 2020), parse + gmm -> app -> face -> joint",
    recipes=(TreeBlockParseRecipe, TreeBlockGMMRecipe, TreeBlockAppearanceRecipe, TreeBlockFaceRecipe,
             TreeBlockJointRecipe),
    representations=(MULTIPOSE,),
)
