"""`precision.mode: auto` (orchestrator.train.precision_auto): measured once per device type and
model shape, cached, logged; an explicit fp16 on a CPU-only cluster is warned about with its cost."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from orchestrator.config import load_config

REPO = Path(__file__).resolve().parents[1]


def tiny(*overrides: str):
    return load_config(REPO / "configs" / "unet_sa" / "demo.yaml", [
        "data.manifest=file:///nowhere/manifest.json", "data.val_manifest=", "data.image_size=64x48",
        "data.batch_size=2", "model.ngf=8", "model.ndf=8", "tracking.enabled=false", *overrides])


def test_auto_is_measured_once_then_cached_and_explicit_fp16_on_cpu_is_warned(tmp_path, monkeypatch, capsys):
    import vton_models  # noqa: F401
    from orchestrator.train import precision_auto

    monkeypatch.setenv(precision_auto.CACHE_ENV, str(tmp_path))
    cfg = tiny()
    assert cfg.precision.mode == "auto"  # the shipped configs' default

    import torch

    callers = torch.get_num_threads()
    first = precision_auto.measured_choice(cfg)
    assert not first.cached and first.mode in ("fp16", "bf16", "fp32") and first.device.startswith("cpu ")
    # Measured with one worker's threads (ray.cpus_per_worker: 1), and the caller's count left as it was.
    assert ", 1 thread(s) " in first.device and torch.get_num_threads() == callers
    assert set(first.seconds_per_step) == {"fp16", "bf16", "fp32"} and all(t > 0 for t in first.seconds_per_step.values())
    (cache,) = (tmp_path / "precision").glob("*.json")
    assert json.loads(cache.read_text())["mode"] == first.mode

    resolved = precision_auto.resolve_precision(cfg)  # no Ray here: measured in this process, i.e. cached
    out = capsys.readouterr().out
    assert resolved.precision.mode == first.mode and first.reason in resolved.precision.auto_reason
    assert f"[vton] precision auto -> {first.mode}, cached for cpu " in out

    # A different model shape is another entry; the same one is never measured twice.
    assert precision_auto.measured_choice(cfg).cached
    assert not precision_auto.measured_choice(tiny("model.ngf=4")).cached

    # fp16 asked for on a CPU-only cluster: kept, and its measured cost said, from the cache.
    explicit = precision_auto.resolve_precision(tiny("precision.mode=fp16"))
    err = capsys.readouterr().err
    assert explicit.precision.mode == "fp16"
    if first.mode != "fp16":
        fp16, best = first.seconds_per_step["fp16"], first.seconds_per_step[first.mode]
        assert f"precision.mode=fp16 on a CPU-only cluster: {fp16:.3f} s/step against {best:.3f} with {first.mode}" in err
        assert f"precision.mode=auto would choose {first.mode}" in err


def test_auto_reaching_a_distributed_loop_is_refused():
    """Ranks measuring on their own could choose different precisions; the driver resolves it."""
    from orchestrator.train.loop import GanLoop, WorkerContext

    with pytest.raises(ValueError, match="must be resolved before the workers start"):
        GanLoop(tiny(), WorkerContext(rank=0, world_size=2))
