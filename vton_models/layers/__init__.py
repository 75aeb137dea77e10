"""Reusable building blocks: attention, normalisation helpers, residual blocks."""

from vton_models.layers.attention import SelfAttention2d
from vton_models.layers.norm import spectral_norm
from vton_models.layers.residual import ResnetBlock

__all__ = ["ResnetBlock", "SelfAttention2d", "spectral_norm"]
