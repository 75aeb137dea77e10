"""Plain PyTorch state dicts out of a DeepSpeed training checkpoint (for MLflow and inference).

A loop checkpoint written with ``strategy.name=deepspeed`` holds one DeepSpeed checkpoint per
network under ``<checkpoint>/deepspeed/<network>/state/``. At ZeRO 1/2 the fp32 master weights are
split across the ``zero_pp_rank_*`` optimizer files, one per rank (Ray Train merged the ranks'
directories into one), so they are consolidated with DeepSpeed's own ``zero_to_fp32``. At ZeRO 0
there are no partitions: the model-states file holds the whole module (cast to fp32 here, since
with DeepSpeed fp16 the module itself is half precision).

Why the loop does not need this for its own MLflow export: at ZeRO <= 2 parameters are never
partitioned, so ``strategy.module("G")`` is whole on every rank (fp32 with fp32 and bf16-autocast
training). This converter is for everything *after* training: a checkpoint in object storage ->
a state dict that ``Generator.load_state_dict`` accepts without DeepSpeed installed at inference.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from orchestrator.train.strategy.deepspeed import DEEPSPEED_DIR, TAG


def _zero_stage(engine_dir: Path) -> int:
    """ZeRO stage recorded in the files, not in our config: the checkpoint must speak for itself."""
    model_states = engine_dir / TAG / "mp_rank_00_model_states.pt"
    if not model_states.is_file():
        raise FileNotFoundError(f"{engine_dir}: no DeepSpeed model states at {model_states}")
    optim_files = sorted((engine_dir / TAG).glob("*_optim_states.pt"))
    if not optim_files:
        return 0
    state = torch.load(optim_files[0], map_location="cpu", weights_only=False)
    return int(state["optimizer_state_dict"].get("zero_stage", 0))


def export_network(checkpoint_dir: str | Path, network: str) -> dict[str, torch.Tensor]:
    """fp32 state dict (parameters and buffers, no wrapper prefixes) of one network."""
    engine_dir = Path(checkpoint_dir) / DEEPSPEED_DIR / network
    if not engine_dir.is_dir():
        meta = Path(checkpoint_dir) / "meta.json"
        written_by = json.loads(meta.read_text()).get("strategy") if meta.is_file() else "unknown"
        raise FileNotFoundError(f"{checkpoint_dir} has no DeepSpeed checkpoint for '{network}' (written by "
                                f"strategy '{written_by}'); DDP checkpoints hold plain state dicts in state.pt")
    if _zero_stage(engine_dir) == 0:
        state = torch.load(engine_dir / TAG / "mp_rank_00_model_states.pt", map_location="cpu", weights_only=False)
        return {k: (v.float() if v.is_floating_point() else v).clone() for k, v in state["module"].items()}
    from deepspeed.utils.zero_to_fp32 import get_fp32_state_dict_from_zero_checkpoint

    return dict(get_fp32_state_dict_from_zero_checkpoint(str(engine_dir), tag=TAG))


def export_generator(checkpoint_dir: str | Path, network: str = "G") -> dict[str, torch.Tensor]:
    """The generator's plain PyTorch state dict from a DeepSpeed (ZeRO 0/1/2) loop checkpoint."""
    return export_network(checkpoint_dir, network)
