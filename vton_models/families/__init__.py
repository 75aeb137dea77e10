"""Every model family of the project: register a new one by adding its folder here (one line)."""

from vton_models.families import cpvton_aux, unet_sa, viton_hd

FAMILIES = (unet_sa.FAMILY, viton_hd.FAMILY, cpvton_aux.FAMILY)
