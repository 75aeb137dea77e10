"""A generator straight from a training checkpoint on object storage (`vton eval --checkpoint URL`).

Why this exists next to registered models: during a long run users want numbers for a checkpoint
before anything is registered (is step 40k better than 30k?). A checkpoint written by the loop
records its resolved run config in ``meta.json``, so it speaks for itself: the recipe, resolution
and representation are rebuilt from it, never guessed from the command line. The weights are the
ones the loop would export to MLflow (the EMA generator when EMA is on), taken from ``state.pt``
for DDP or consolidated from the ZeRO shards for DeepSpeed.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import torch


class CheckpointError(ValueError):
    """The URL does not point at a usable loop checkpoint; the message names the URL and the file."""


def fetch_checkpoint(url: str, dest: Path) -> Path:
    """Copy the checkpoint directory at ``url`` (s3://, file:// or a path) into ``dest``."""
    from pyarrow import fs as pafs

    from orchestrator.checkpoints.storage import storage_location

    path, filesystem = storage_location(url)
    filesystem = filesystem or pafs.LocalFileSystem()
    info = filesystem.get_file_info(path)
    if info.type != pafs.FileType.Directory:
        raise CheckpointError(f"--checkpoint {url}: no checkpoint directory there "
                              "(expected .../<run name>/checkpoint_<timestamp>/ with meta.json and state.pt)")
    dest.mkdir(parents=True, exist_ok=True)
    pafs.copy_files(path, str(dest), source_filesystem=filesystem, destination_filesystem=pafs.LocalFileSystem())
    return dest


def generator_state(directory: Path, state: dict, strategy: str, g_name: str,
                    first_generator: bool = True) -> dict[str, torch.Tensor]:
    """The weights the trainer exports for generator ``g_name``: its EMA if the run kept one, else the
    trained network. (Checkpoints written before several generators had one EMA state dict, of the
    recipe's first generator, in place of a mapping by name.)"""
    ema = state.get("ema")
    if ema:
        if all(torch.is_tensor(v) for v in ema.values()):
            if first_generator:
                return ema
        elif g_name in ema:
            return ema[g_name]
    if strategy == "deepspeed":
        from orchestrator.checkpoints.zero_export import export_network

        return export_network(directory, g_name)
    return state["strategy"]["networks"][g_name]


def load_checkpoint_generator(url: str):
    """-> ``LoadedModel`` of the generators saved in the checkpoint at ``url``."""
    from orchestrator.checkpoints.state import META_FILE, STATE_FILE, read_meta
    from orchestrator.config import config_from_dict
    from orchestrator.registry.models import LoadedModel
    from orchestrator.recipes import build_recipe_from_config

    with tempfile.TemporaryDirectory(prefix="vton-eval-ckpt-") as tmp:
        directory = fetch_checkpoint(url, Path(tmp) / "checkpoint")
        missing = [n for n in (META_FILE, STATE_FILE) if not (directory / n).is_file()]
        if missing:
            raise CheckpointError(f"--checkpoint {url}: missing {', '.join(missing)}; not a complete vton "
                                  "checkpoint (rank 0 writes both)")
        meta = read_meta(directory)
        if meta.config is None:
            raise CheckpointError(f"--checkpoint {url}: {META_FILE} records no run config (written before "
                                  "checkpoints carried it); register the model and use --model instead")
        cfg = config_from_dict(meta.config)
        recipe = build_recipe_from_config(cfg)
        state = torch.load(directory / STATE_FILE, map_location="cpu", weights_only=False)
        fresh = recipe.build_networks()
        networks = {}
        for i, name in enumerate(recipe.generator_names()):
            fresh[name].load_state_dict(generator_state(directory, state, meta.strategy, name, i == 0))
            networks[name] = fresh[name].eval()
    return LoadedModel(networks, cfg, url)
