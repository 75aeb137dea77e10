"""Freezing the networks a phase does not step.

Two kinds of state change when a network runs forward in training mode: gradients (if its
parameters require them) and spectral norm's power-iteration vectors, which advance on every
forward. G's loss flows *through* D, so D must be frozen for it (no gradients into D's parameters,
no change to D's state). And with gradient accumulation, D runs once per micro-batch: pausing the
power iteration after the first micro-batch makes ``grad_accum=k`` with batch ``b`` the same
optimisation as one batch of ``k*b`` (one power step per optimizer step either way). A generator
frozen in D's phase keeps its power iteration running, as SPADE and VITON-HD train (their D step
generates the fakes with G in training mode); see ``vton_models.recipe.Phase``.
"""

from __future__ import annotations

import contextlib
from typing import Iterator

from torch import nn
from torch.nn.utils.parametrizations import _SpectralNorm
from torch.nn.utils.spectral_norm import SpectralNorm


def _power_iteration_modules(module: nn.Module) -> list[nn.Module]:
    """Modules whose ``training`` flag decides whether spectral norm's power iteration runs."""
    found: list[nn.Module] = []
    for sub in module.modules():
        if isinstance(sub, _SpectralNorm):  # torch.nn.utils.parametrizations.spectral_norm
            found.append(sub)
        elif any(isinstance(hook, SpectralNorm) for hook in sub._forward_pre_hooks.values()):
            found.append(sub)  # legacy torch.nn.utils.spectral_norm: the hook reads sub.training
    return found


@contextlib.contextmanager
def power_iteration_paused(module: nn.Module, paused: bool = True) -> Iterator[None]:
    """Run ``module`` without advancing spectral-norm vectors; dropout etc. keep their mode."""
    targets = [m for m in _power_iteration_modules(module) if m.training] if paused else []
    for m in targets:
        m.training = False
    try:
        yield
    finally:
        for m in targets:
            m.training = True


@contextlib.contextmanager
def frozen(module: nn.Module, pause_power_iteration: bool = True) -> Iterator[None]:
    """No gradients into ``module``'s parameters while inside (and, by default, no change to its
    spectral-norm state)."""
    params = [p for p in module.parameters() if p.requires_grad]
    for p in params:
        p.requires_grad_(False)
    try:
        with power_iteration_paused(module, paused=pause_power_iteration):
            yield
    finally:
        for p in params:
            p.requires_grad_(True)
