"""Normalisation helpers shared by discriminators."""

from __future__ import annotations

from torch import nn
from torch.nn.utils.parametrizations import spectral_norm as _spectral_norm


def spectral_norm(module: nn.Module, enabled: bool = True) -> nn.Module:
    """Wrap ``module`` in spectral normalisation (Miyato et al., 2018) when ``enabled``.

    Uses the parametrization API rather than the legacy hook: the weight stays a real
    ``Parameter`` (``parametrizations.weight.original``), which is what DDP/DeepSpeed and
    ``deepcopy`` expect, and double backward (WGAN-GP) works through it. The flag lets network
    constructors keep one code path for "SN on" and "SN off" layers.
    """
    return _spectral_norm(module) if enabled else module
