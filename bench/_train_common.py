"""Shared set-up of the training benchmarks: one dataset, one model, timed by the loop itself.

Throughput is the loop's ``perf/steady_steps_per_s`` (optimizer steps per second after the first
three), so start-up (Ray workers, process groups, DataLoader workers) is excluded on both sides of
every ratio and only the per-step cost is compared.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from orchestrator.config import Config, load_config  # noqa: E402


def make_shards(root: Path, n: int = 96) -> str:
    from shards.synthetic import synthesize
    from shards.writer import build_shards

    synthesize(root / "data", n=n, size=(64, 48), seed=0, split_test_fraction=0.0)
    build_shards("viton_hd", root / "data", "train", f"file://{root}/shards", shard_size_bytes="256KB", workers=1)
    return f"file://{root}/shards/manifest.json"


def bench_config(manifest: str, *overrides: str) -> Config:
    return load_config(REPO / "configs" / "unet_sa" / "demo.yaml", [
        f"data.manifest={manifest}", "data.val_manifest=", "tracking.enabled=false", "precision.mode=fp32",
        "train.steps=40", "train.grad_accum=1", "train.sample_every=0", "train.log_every=1000",
        "checkpoint.every_n_steps=100000", "data.loader_workers=1", *overrides,
    ])


def run_bare(cfg: Config) -> float:
    """The same loop in this process: no Ray, no process group."""
    from orchestrator.train.loop import GanLoop, WorkerContext

    torch.set_num_threads(cfg.ray.worker_threads)
    result = GanLoop(cfg, WorkerContext()).run()
    return float(result.last_metrics["perf/steady_steps_per_s"])


def run_ray(cfg: Config) -> float:
    import ray

    from orchestrator.jobs.launch import fit

    with tempfile.TemporaryDirectory() as storage:
        raw = cfg.to_dict()
        raw["checkpoint"]["storage_path"] = storage
        from orchestrator.config import config_from_dict

        if not ray.is_initialized():
            ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
        outcome = fit(config_from_dict(raw))
    return float(outcome.metrics["perf/steady_steps_per_s"])


def interleaved(variants: dict, rounds: int) -> dict[str, list[float]]:
    """Run every variant once per round, alternating, so slow drifts in machine load hit all alike."""
    results: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(rounds):
        for name, run in variants.items():
            results[name].append(run())
    return results


def median(values: list[float]) -> float:
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def machine() -> dict:
    import os

    from orchestrator.hardware import cpu_model

    return {"cpu": cpu_model(), "cores": os.cpu_count(), "torch": torch.__version__,
            "device": "cpu", "load_average_1m_at_end": round(os.getloadavg()[0], 2)}


def write_result(name: str, payload: dict) -> None:
    out = REPO / "bench" / "results" / name
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(payload, indent=2) + "\n")
    print(json.dumps(payload, indent=2))
