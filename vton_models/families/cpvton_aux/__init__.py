"""Seed 003: CP-VTON with auxiliary human segmentation (Ayush et al., ICCVW 2019), two stages:
GMM then TOM, each with a head predicting the parse of the person wearing the try-on garment."""

from vton_models.families.cpvton_aux import importer
from vton_models.families.cpvton_aux.recipes import CPVTONGMMRecipe, CPVTONTOMRecipe
from vton_models.family import Family
from vton_models.representation.cpvton import CPVTON

FAMILY = Family(
    name="cpvton_aux",
    paper="seed 003: CP-VTON + auxiliary human segmentation (Ayush et al., ICCVW 2019), GMM -> TOM",
    recipes=(CPVTONGMMRecipe, CPVTONTOMRecipe),
    representations=(CPVTON,),
    importer=importer,
)
