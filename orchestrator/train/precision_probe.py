"""Measure a recipe's step time per precision on this machine, to choose one honestly.

CPU fp16 autocast runs without fast kernels (tens of times slower than fp32 on x86), while on
GPUs fp16 and bf16 are both fast. Rather than hard-coding that, the demo measures a few real GAN
steps of the configured model and reports the numbers it chose from.
"""

from __future__ import annotations

import torch

from orchestrator.config import Config, config_from_dict
from orchestrator.train.loop import GanLoop, WorkerContext


class _RandomBatches:
    """Batches of the recipe's fields at the configured size: timing needs shapes, not content."""

    batches_per_epoch = 1_000_000

    def __init__(self, cfg: Config, fields: dict[str, int]) -> None:
        h, w = cfg.data.image_size
        gen = torch.Generator().manual_seed(0)
        self.batch = {name: torch.rand(cfg.data.batch_size, c, h, w, generator=gen) * 2 - 1
                      for name, c in fields.items()}

    def iter_from_batches(self, consumed: int):
        while True:
            yield self.batch


def seconds_per_step(cfg: Config, mode: str, steps: int = 2, device: torch.device | None = None) -> float:
    """Wall time of the last of ``steps`` optimizer steps (the first ones warm up allocators)."""
    raw = cfg.to_dict()
    raw["precision"]["mode"] = mode
    raw["tracking"]["enabled"] = False
    raw["data"]["val_manifest"] = ""
    raw["train"].update(steps=steps, grad_accum=1, sample_every=0, eval_every=0, log_every=1)  # last step alone
    probe_cfg = config_from_dict(raw)
    loop = GanLoop(probe_cfg, WorkerContext(device=device or torch.device("cpu")))
    loop.hooks.train_data = _RandomBatches(probe_cfg, loop.recipe.batch_fields)
    return float(loop.run().last_metrics["perf/step_time_s"])


def choose_precision(cfg: Config, slower: float = 3.0) -> tuple[str, dict[str, float], str]:
    """Pick a precision from measured step times; returns (mode, seconds per step by mode, reason).

    Policy: mixed precision with fp16 + GradScalers; bf16 if fp16 is more than ``slower`` times
    slower than bf16; fp32 if even the chosen mixed mode is more than ``slower`` times slower than
    fp32 (a CPU without reduced-precision kernels, e.g. AVX2 without AVX-512 BF16/FP16, runs them
    through reference convolutions). The reason string carries the numbers.
    """
    # DeepSpeed's fp16 optimizer refuses the CPU accelerator (launch.preflight says so): not a candidate.
    fp16_possible = cfg.strategy.name != "deepspeed" or cfg.ray.use_gpu
    modes = ("fp16", "bf16", "fp32") if fp16_possible else ("bf16", "fp32")
    timings = {mode: seconds_per_step(cfg, mode) for mode in modes}
    figures = ", ".join(f"{m} {t:.3f}" for m, t in timings.items())
    mixed = "fp16" if fp16_possible and timings["fp16"] <= slower * timings["bf16"] else "bf16"
    if timings[mixed] > slower * timings["fp32"]:
        return "fp32", timings, (
            f"fp32: on this machine mixed precision is {timings[mixed] / timings['fp32']:.0f}x slower than fp32 "
            f"(s/step: {figures}); it has no fast fp16/bf16 kernels. On a GPU this demo runs fp16")
    if mixed == "bf16":
        why = (f"fp16 is {timings['fp16'] / timings['bf16']:.1f}x slower here" if fp16_possible
               else "DeepSpeed's fp16 needs a GPU")
        return "bf16", timings, f"bf16: {why} (s/step: {figures})"
    return "fp16", timings, f"fp16 with one GradScaler per network (s/step: {figures})"
