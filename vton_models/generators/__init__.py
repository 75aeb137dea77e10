"""Generators, one network per module."""

from vton_models.generators.unet_sa import VARIANTS as UNET_SA_VARIANTS
from vton_models.generators.unet_sa import UnetSAGenerator, build_unet_sa_generator

__all__ = ["UNET_SA_VARIANTS", "UnetSAGenerator", "build_unet_sa_generator"]
