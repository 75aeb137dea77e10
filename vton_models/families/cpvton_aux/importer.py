"""Import CP-VTON's released checkpoints (sergeywong/cp-vton: ``gmm_final.pth``, ``tom_final.pth``).

The GMM's module names are CP-VTON's (``extractionA.model.N``, ``regression.conv.N``,
``regression.linear``); the TOM's nested ``UnetGenerator`` names map onto our explicit U-Net through
``official_tom_keys``. The auxiliary heads are ours (the paper's addition, never released), so they
are the only keys allowed to be absent and keep their fresh initialisation. CP-VTON sampled its
warps with PyTorch < 1.3's ``grid_sample``, i.e. ``align_corners=True``: the import config sets
``model.align_corners=true`` so that imported networks compute what CP-VTON's compute.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from vton_models import released
from vton_models.families.cpvton_aux.networks import GMMAux, TOMGenerator, official_tom_keys
from vton_models.released import CheckpointMismatch

__all__ = ["CheckpointMismatch", "IMPORT_OVERRIDES", "RELEASE_NAMES", "STAGES", "STAGE_FILES", "SOURCE", "build_official",
           "load_official"]

STAGES = ("gmm", "tom")
STAGE_FILES = {"gmm": "CP-VTON GMM state dict (gmm_final.pth)", "tom": "CP-VTON TOM state dict (tom_final.pth)"}
SOURCE = "CP-VTON release (sergeywong/cp-vton)"
#: ``vton import cp-vton`` (the release's name) as well as ``vton import cpvton-aux``.
RELEASE_NAMES = ("cp-vton",)
#: Settings every imported stage is registered with (before the user's --set).
IMPORT_OVERRIDES = ("model.align_corners=true",)
KEY_MAP: dict[str, dict[str, str]] = {"gmm": {}, "tom": official_tom_keys()}
FRESH = ("aux_decoder.",)


def build_official(stage: str) -> nn.Module:
    """Our network for ``stage`` at CP-VTON's options (256x192, ngf 64, grid 5), with no auxiliary head."""
    if stage == "gmm":
        return GMMAux((256, 192), 5, 64)
    if stage == "tom":
        return TOMGenerator()
    raise ValueError(f"unknown CP-VTON stage {stage!r}; allowed: {list(STAGES)}")


def load_official(stage: str, source: str | Path | Mapping[str, torch.Tensor],
                  network: nn.Module | None = None) -> nn.Module:
    """``network`` (default: ``build_official(stage)``) with CP-VTON's weights loaded; an auxiliary
    head, when the network has one, stays as initialised."""
    if stage not in KEY_MAP:
        raise ValueError(f"unknown CP-VTON stage {stage!r}; allowed: {list(STAGES)}")
    net = network if network is not None else build_official(stage)
    return released.load_into(f"CP-VTON {stage}", source, net, KEY_MAP[stage], FRESH)
