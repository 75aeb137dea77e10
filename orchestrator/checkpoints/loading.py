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


def generator_state(directory: Path, state: dict, strategy: str, g_name: str) -> dict[str, torch.Tensor]:
    """The weights the loop exports: EMA if the run kept one, else the trained G."""
    if state.get("ema") is not None:
        return state["ema"]
    if strategy == "deepspeed":
        from orchestrator.checkpoints.zero_export import export_generator

        return export_generator(directory, g_name)
    return state["strategy"]["networks"][g_name]


def load_checkpoint_generator(url: str):
    """-> ``orchestrator.evaluate.LoadedModel`` for the generator saved in the checkpoint at ``url``."""
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
        g_name = next(s.name for s in recipe.networks if s.role == "generator")
        state = torch.load(directory / STATE_FILE, map_location="cpu", weights_only=False)
        generator = recipe.build_networks()[g_name]
        generator.load_state_dict(generator_state(directory, state, meta.strategy, g_name))
    return LoadedModel(generator.eval(), cfg, url)
