"""Import the released VITON-HD checkpoints (``seg_final.pth``, ``gmm_final.pth``, ``alias_final.pth``).

Our networks use the official module names, so the key mapping is the identity; it still goes
through ``vton_models.released`` so that a renamed, truncated or mis-shaped file fails *before*
loading, with every offending key listed. Registration in MLflow lives in the orchestrator
(``vton_models`` never imports MLflow); see ``orchestrator.cli`` ``vton import viton-hd``.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from vton_models import released
from vton_models.families.viton_hd.networks import ALIASGenerator, SegGenerator
from vton_models.networks.gmm import GMM
from vton_models.released import CheckpointMismatch

__all__ = ["CheckpointMismatch", "STAGES", "STAGE_FILES", "SOURCE", "build_official", "load_official", "map_state_dict"]

STAGES = ("seg", "gmm", "alias")
#: What ``vton import viton-hd`` asks for, per stage (its ``--<stage>`` option's help).
STAGE_FILES = {"seg": "official SegGenerator state dict (seg_final.pth)",
               "gmm": "official GMM state dict (gmm_final.pth)",
               "alias": "official ALIASGenerator state dict (alias_final.pth)"}
SOURCE = "VITON-HD official release"
#: Official key -> our key. Empty: our modules carry the official names.
KEY_MAP: dict[str, dict[str, str]] = {stage: {} for stage in STAGES}


def build_official(stage: str) -> nn.Module:
    """Our network for ``stage`` at the official default options (1024x768, ngf 64, grid 5, 'most')."""
    if stage == "seg":
        return SegGenerator(21, 13, 64)
    if stage == "gmm":
        return GMM(7, 3, (256, 192), (1024, 768), 5, 64)
    if stage == "alias":
        return ALIASGenerator(9, 7, 64, "most")
    raise ValueError(f"unknown VITON-HD stage {stage!r}; allowed: {list(STAGES)}")


def map_state_dict(stage: str, official: Mapping[str, torch.Tensor], network: nn.Module) -> dict[str, torch.Tensor]:
    """Rename ``official`` onto ``network``'s keys and check the key set and every shape."""
    if stage not in KEY_MAP:
        raise ValueError(f"unknown VITON-HD stage {stage!r}; allowed: {list(STAGES)}")
    return released.map_state_dict(f"VITON-HD {stage}", official, network, KEY_MAP[stage])


def load_official(stage: str, source: str | Path | Mapping[str, torch.Tensor],
                  network: nn.Module | None = None) -> nn.Module:
    """``network`` (default: ``build_official(stage)``) with the official weights of ``source`` loaded."""
    if stage not in KEY_MAP:
        raise ValueError(f"unknown VITON-HD stage {stage!r}; allowed: {list(STAGES)}")
    net = network if network is not None else build_official(stage)
    return released.load_into(f"VITON-HD {stage}", source, net, KEY_MAP[stage])
