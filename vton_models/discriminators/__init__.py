"""Discriminators, one network per module."""

from vton_models.discriminators.patchgan import PatchGANDiscriminator

__all__ = ["PatchGANDiscriminator"]
