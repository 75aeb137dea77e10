"""Import the released VITON-HD checkpoints (``seg_final.pth``, ``gmm_final.pth``, ``alias_final.pth``).

Our networks use the official module names, so the key mapping is the identity; it still goes
through ``map_state_dict`` so that a renamed, truncated or mis-shaped file fails *before* loading,
with every offending key listed (``load_state_dict(strict=True)`` stops at a terse summary and
cannot say which stage a file belongs to). Registration in MLflow lives in the orchestrator
(``vton_models`` never imports MLflow); see ``orchestrator.cli`` ``vton import viton-hd``.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from vton_models.families.viton_hd.networks import ALIASGenerator, SegGenerator
from vton_models.networks.gmm import GMM

STAGES = ("seg", "gmm", "alias")
#: What ``vton import viton-hd`` asks for, per stage (its ``--<stage>`` option's help).
STAGE_FILES = {"seg": "official SegGenerator state dict (seg_final.pth)",
               "gmm": "official GMM state dict (gmm_final.pth)",
               "alias": "official ALIASGenerator state dict (alias_final.pth)"}
SOURCE = "VITON-HD official release"
#: Official key -> our key. Empty: our modules carry the official names.
KEY_MAP: dict[str, dict[str, str]] = {stage: {} for stage in STAGES}


class CheckpointMismatch(ValueError):
    """An official state dict does not fit our network; the message lists every key at fault."""


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
    mapping = KEY_MAP[stage]
    mapped = {mapping.get(k, k): v for k, v in official.items()}
    expected = network.state_dict()
    missing = sorted(set(expected) - set(mapped))
    extra = sorted(set(mapped) - set(expected))
    wrong = sorted(f"{k}: checkpoint {tuple(mapped[k].shape)} vs network {tuple(expected[k].shape)}"
                   for k in set(expected) & set(mapped) if tuple(mapped[k].shape) != tuple(expected[k].shape))
    if missing or extra or wrong:
        parts = []
        if missing:
            parts.append(f"missing keys ({len(missing)}): {missing}")
        if extra:
            parts.append(f"unexpected keys ({len(extra)}): {extra}")
        if wrong:
            parts.append(f"shape mismatches ({len(wrong)}): {wrong}")
        raise CheckpointMismatch(f"VITON-HD {stage} checkpoint does not match our network: " + "; ".join(parts))
    return mapped


def load_official(stage: str, source: str | Path | Mapping[str, torch.Tensor],
                  network: nn.Module | None = None) -> nn.Module:
    """``network`` (default: ``build_official(stage)``) with the official weights of ``source`` loaded."""
    net = network if network is not None else build_official(stage)
    if isinstance(source, Mapping):
        state = source
    else:
        path = Path(source)
        if not path.is_file():
            raise FileNotFoundError(f"VITON-HD {stage} checkpoint not found: {path}")
        state = torch.load(path, map_location="cpu", weights_only=True)
        if isinstance(state, Mapping) and "state_dict" in state and not any(k.endswith(".weight") for k in state):
            state = state["state_dict"]
    net.load_state_dict(map_state_dict(stage, state, net), strict=True)
    return net.eval()
