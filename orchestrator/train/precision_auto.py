"""``precision.mode: auto``: the precision measured on the cluster's workers, once per device type.

fp16 autocast on a CPU runs without fast kernels: a sweep of the demo config ran at 0.7 samples/s
instead of 37.7 with bf16, because only `vton demo` measured before choosing. Now every run whose
config says ``auto`` gets the measured choice (``precision_probe.choose_precision``: a few real
steps of the configured model per mode), taken where the workers run (a Ray task with a worker's
resources) and cached there per device type and model shape (``~/.cache/vton/precision``, or
``VTON_CACHE_DIR``), so a cluster measures once. An explicit ``fp16`` on a CPU-only cluster is kept
but warned about with the measured cost. The choice and its reason are printed and tagged on the run.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from orchestrator.config import Config, config_from_dict
from orchestrator.hardware import torch_threads

CACHE_ENV = "VTON_CACHE_DIR"


@dataclass(frozen=True)
class PrecisionChoice:
    mode: str
    reason: str
    device: str
    seconds_per_step: dict[str, float]
    cached: bool


def device_kind(use_gpu: bool) -> str:
    """What the choice depends on besides the model: the GPU model, or the CPU model and core count."""
    import torch

    if use_gpu and torch.cuda.is_available():
        return f"cuda {torch.cuda.get_device_name(0)} (torch {torch.__version__})"
    from orchestrator.hardware import cpu_model

    model = cpu_model()
    threads = torch.get_num_threads()
    return f"cpu {model}, {threads} thread(s) (torch {torch.__version__}, {torch.backends.cpu.get_cpu_capability()})"


def _cache_file(cfg: Config, device: str) -> Path:
    raw = cfg.to_dict()
    key = json.dumps({"model": raw["model"], "image_size": raw["data"]["image_size"], "batch": raw["data"]["batch_size"],
                      "strategy": raw["strategy"]["name"], "device": device}, sort_keys=True)
    root = Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "vton") / "precision"
    return root / f"{hashlib.sha1(key.encode()).hexdigest()[:16]}.json"


def measured_choice(cfg: Config) -> PrecisionChoice:
    """The choice for ``cfg`` on this process's device: from the cache, else measured and cached.

    With one worker's threads throughout: the device's description (the cache key) names them."""
    with torch_threads(cfg.ray.worker_threads):
        device = device_kind(cfg.ray.use_gpu)
        path = _cache_file(cfg, device)
        if path.is_file():
            saved = json.loads(path.read_text())
            return PrecisionChoice(saved["mode"], saved["reason"], device, saved["seconds_per_step"], cached=True)
        from orchestrator.train.precision_probe import choose_precision

        mode, timings, reason = choose_precision(cfg)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps({"mode": mode, "reason": reason, "seconds_per_step": timings, "device": device}))
    tmp.replace(path)  # concurrent trials of a sweep may measure at once: the last whole file wins
    return PrecisionChoice(mode, reason, device, timings, cached=False)


def _measure_on_worker(raw: dict) -> PrecisionChoice:
    import vton_models  # noqa: F401 - torchvision's CPU shim in the Ray worker process

    return measured_choice(config_from_dict(raw))


def resolve_precision(cfg: Config) -> Config:
    """``cfg`` with a concrete precision: ``auto`` measured (or cached) on a worker of the connected
    Ray cluster; an explicit ``fp16`` without GPUs kept, with its measured cost on stderr."""
    mode = cfg.precision.mode
    if mode != "auto" and not (mode == "fp16" and not cfg.ray.use_gpu):
        return cfg
    choice = _on_a_worker(cfg)
    source = "cached for" if choice.cached else "measured on"
    if mode == "fp16":
        fp16, best = choice.seconds_per_step.get("fp16"), choice.seconds_per_step.get(choice.mode)
        if choice.mode != "fp16" and fp16 and best:
            print(f"[vton] warning: precision.mode=fp16 on a CPU-only cluster: {fp16:.3f} s/step against "
                  f"{best:.3f} with {choice.mode} ({fp16 / best:.0f}x slower, {source} {choice.device}); "
                  f"precision.mode=auto would choose {choice.mode}", file=sys.stderr, flush=True)
        return cfg
    print(f"[vton] precision auto -> {choice.mode}, {source} {choice.device}: {choice.reason}", flush=True)
    precision = dataclasses.replace(cfg.precision, mode=choice.mode, auto_reason=f"{choice.reason}; {choice.device}")
    return dataclasses.replace(cfg, precision=precision)


def _on_a_worker(cfg: Config) -> PrecisionChoice:
    """The measurement where the training workers run, with one worker's resources."""
    import ray

    if not ray.is_initialized():
        return measured_choice(cfg)
    resources = {k: v for k, v in cfg.ray.resources_per_worker.items()}
    task = ray.remote(num_cpus=cfg.ray.cpus_per_worker, num_gpus=1 if cfg.ray.use_gpu else 0,
                      resources=resources or None)(_measure_on_worker)
    return ray.get(task.remote(cfg.to_dict()))
