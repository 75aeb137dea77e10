"""What a training checkpoint holds and how it is written into / read from a checkpoint directory.

Ray Train uploads each reported directory to the run's storage (the S3 server or a local path)
and merges the directories reported by all ranks. So rank 0 writes the shared state (networks,
optimizers, scalers, schedulers, EMA, step, data position, MLflow run id) and *every* rank writes
its own RNG states: resuming must restore each rank's random stream, not rank 0's everywhere.
"""

from __future__ import annotations

import json
import random
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

STATE_FILE = "state.pt"
META_FILE = "meta.json"


@dataclass
class TrainingPosition:
    """Where training stands: optimizer steps of G done and micro-batches taken from the stream."""

    step: int = 0
    batches_consumed: int = 0
    bad_samples: int = 0  # the run's, all ranks (orchestrator.train.bad_samples), as of the last settle
    samples_read: int = 0


@dataclass
class CheckpointMeta:
    position: TrainingPosition
    mlflow_run_id: str | None
    recipe: str
    strategy: str
    world_size: int
    val_before: dict[str, float] | None = None  # held-out metrics at step 0, for before/after reports
    format_version: int = 1
    #: The resolved run config, so a checkpoint can be evaluated or exported on its own (`vton eval
    #: --checkpoint`); None in checkpoints written before it was recorded.
    config: dict[str, Any] | None = None


def rng_states() -> dict[str, Any]:
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_states(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def write_checkpoint(directory: Path, rank: int, meta: CheckpointMeta, shared_state: dict | None) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    torch.save(rng_states(), directory / f"rng_rank{rank}.pt")
    if rank == 0:
        assert shared_state is not None, "rank 0 must write the shared state"
        torch.save(shared_state, directory / STATE_FILE)
        (directory / META_FILE).write_text(json.dumps(asdict(meta), indent=2))


def read_meta(directory: Path) -> CheckpointMeta:
    raw = json.loads((directory / META_FILE).read_text())
    raw["position"] = TrainingPosition(**raw["position"])
    return CheckpointMeta(**raw)


def read_checkpoint(directory: Path, rank: int) -> tuple[CheckpointMeta, dict, dict | None]:
    """(meta, shared state, this rank's RNG states or None if the world size changed)."""
    missing = [name for name in (META_FILE, STATE_FILE) if not (directory / name).is_file()]
    if missing:
        raise FileNotFoundError(f"checkpoint {directory} is incomplete: missing {missing}")
    meta = read_meta(directory)
    state = torch.load(directory / STATE_FILE, map_location="cpu", weights_only=False)
    rng_path = directory / f"rng_rank{rank}.pt"
    rng = torch.load(rng_path, weights_only=False) if rng_path.is_file() else None
    return meta, state, rng
