"""GPU readiness checked where there is no GPU: the NHWC batch conversion, and bench/gpu_check.sh, which
must refuse a CPU machine at once and whose code path runs on CPU with --cpu-smoke.

(``train.channels_last`` in the loop: tests/test_loop.py; the options' validation: tests/test_config.py.)"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest
import torch

from orchestrator.failures import EXIT_CLUSTER
from orchestrator.train.memory_format import batch_to_device

REPO = Path(__file__).resolve().parents[1]
GPU_CHECK = REPO / "bench" / "gpu_check.sh"


def test_only_4d_float_batch_tensors_become_nhwc():
    batch = {"inputs": torch.rand(2, 5, 8, 6), "parse": torch.zeros(2, 8, 6, dtype=torch.long),
             "labels": torch.zeros(2, 3, 8, 6, dtype=torch.uint8), "pose": torch.rand(2, 18, 2), "__key__": ["a", "b"]}
    out = batch_to_device(batch, torch.device("cpu"), channels_last=True)
    assert out["inputs"].is_contiguous(memory_format=torch.channels_last) and not out["inputs"].is_contiguous()
    assert torch.equal(out["inputs"], batch["inputs"])
    assert all(out[k].is_contiguous() for k in ("parse", "labels", "pose")) and out["__key__"] == ["a", "b"]
    assert batch_to_device(batch, torch.device("cpu"), channels_last=False)["inputs"].is_contiguous()


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA: the check would run for real")
def test_gpu_check_refuses_a_machine_without_cuda_at_once(tmp_path):
    out = tmp_path / "gpu_check.json"
    started = time.perf_counter()
    proc = subprocess.run(["bash", str(GPU_CHECK), "--out", str(out)], capture_output=True, text=True, timeout=120)
    elapsed = time.perf_counter() - started
    assert proc.returncode == EXIT_CLUSTER, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("gpu_check: no CUDA device (torch.cuda.is_available() is False)")
    assert "NVIDIA GPU" in lines[0] and proc.stdout == ""
    assert not out.exists()
    assert elapsed < 30, f"took {elapsed:.1f} s: it must stop before building data or models"


def test_gpu_check_code_path_runs_on_cpu_at_toy_size(tmp_path):
    """--cpu-smoke: the same stage set-up, attachment, timing and JSON as on a GPU, for one family."""
    out = tmp_path / "smoke.json"
    proc = subprocess.run(["bash", str(GPU_CHECK), "--cpu-smoke", "--families", "cpvton_aux", "--precisions", "fp32",
                           "--out", str(out)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(out.read_text())
    run = result["stages"]["cpvton_aux"]["channels_last"]["fp32"]
    assert run["ok"] and run["weights_channels_last"] and run["step_time_ms"] > 0, run
    assert run["attached_stages"] == ["gmm=cpvton_aux.gmm"]  # TOM renders on a (fresh) frozen GMM
    assert result["deepspeed_nccl"] == {"ok": False, "skipped": "needs CUDA"}
