"""Every model family of the project: register a new one by adding its folder here (one line)."""

from vton_models.families import cpvton_aux, spg_vton, tree_block, unet_sa, viton_hd

FAMILIES = (unet_sa.FAMILY, viton_hd.FAMILY, cpvton_aux.FAMILY, tree_block.FAMILY, spg_vton.FAMILY)
