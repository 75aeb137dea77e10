"""Loading a paper's released checkpoint into our network: rename, check every key and shape, load.

Shared by the families' importers. Why check before ``load_state_dict``: its strict mode stops at a
terse summary and cannot say which stage a file belongs to; a renamed, truncated or mis-shaped file
must fail with every offending key listed, before anything is loaded.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn


class CheckpointMismatch(ValueError):
    """A released state dict does not fit our network; the message lists every key at fault."""


def map_state_dict(what: str, official: Mapping[str, torch.Tensor], network: nn.Module, mapping: Mapping[str, str],
                   fresh_prefixes: tuple[str, ...] = ()) -> dict[str, torch.Tensor]:
    """Rename ``official`` onto ``network``'s keys through ``mapping`` (absent names unchanged) and
    check the key set and every shape. Keys under ``fresh_prefixes`` (our additions to the paper's
    network, e.g. an auxiliary head) may be absent: they keep their initialisation."""
    mapped = {mapping.get(k, k): v for k, v in official.items()}
    expected = network.state_dict()
    missing = sorted(k for k in set(expected) - set(mapped) if not k.startswith(fresh_prefixes))
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
        raise CheckpointMismatch(f"{what} checkpoint does not match our network: " + "; ".join(parts))
    return mapped


def read_state_dict(what: str, source: str | Path | Mapping[str, torch.Tensor]) -> Mapping[str, torch.Tensor]:
    """A state dict from a path (``torch.load`` with ``weights_only``; a ``{"state_dict": ...}``
    wrapper is unwrapped) or as given."""
    if isinstance(source, Mapping):
        return source
    path = Path(source)
    if not path.is_file():
        raise FileNotFoundError(f"{what} checkpoint not found: {path}")
    state = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(state, Mapping) and "state_dict" in state and not any(k.endswith(".weight") for k in state):
        state = state["state_dict"]
    return state


def load_into(what: str, source: str | Path | Mapping[str, torch.Tensor], network: nn.Module,
              mapping: Mapping[str, str], fresh_prefixes: tuple[str, ...] = ()) -> nn.Module:
    """``network`` with the released weights of ``source`` loaded (fresh keys kept), in eval mode."""
    state = map_state_dict(what, read_state_dict(what, source), network, mapping, fresh_prefixes)
    network.load_state_dict(state, strict=not fresh_prefixes)
    return network.eval()
