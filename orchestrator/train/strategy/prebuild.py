"""DeepSpeed's CPU communication op, built once into the environment instead of in the first job.

On a CPU accelerator DeepSpeed JIT-compiles ``deepspeed_shm_comm`` (about a minute on 2 cores) the
first time a process initialises it. torch caches the build under ``TORCH_EXTENSIONS_DIR``, by
default ``~/.cache/torch_extensions`` for every environment of the machine; the build files name
the environment's own paths, so each environment that used it after another rebuilt it. Here the
default is the environment's own ``torch_extensions`` folder, and `make setup` runs
``python -m orchestrator.train.strategy.prebuild`` so the first job only loads it.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

EXTENSIONS_ENV = "TORCH_EXTENSIONS_DIR"


def default_extensions_dir() -> Path:
    return Path(sys.prefix) / "torch_extensions"


def use_environment_extensions_dir() -> str:
    """``TORCH_EXTENSIONS_DIR`` for this process (an explicit one wins); returns it."""
    return os.environ.setdefault(EXTENSIONS_ENV, str(default_extensions_dir()))


def build_cpu_comm_op() -> str:
    """Build (or find built) the op DeepSpeed's CPU accelerator loads; says which and how long."""
    where = use_environment_extensions_dir()
    try:
        from deepspeed.accelerator import get_accelerator
    except ImportError:
        return "deepspeed is not installed: nothing to build"
    accelerator = get_accelerator()
    if accelerator.device_name() != "cpu":
        return f"DeepSpeed's accelerator is {accelerator.device_name()}: no CPU op to build"
    builder = accelerator.create_op_builder("ShareMemCommBuilder")
    if builder is None or not builder.is_compatible():
        return "this DeepSpeed has no compatible ShareMemCommBuilder: nothing to build"
    started = time.monotonic()
    builder.load(verbose=False)
    return f"deepspeed_shm_comm ready in {where} ({time.monotonic() - started:.1f}s)"


if __name__ == "__main__":
    print(build_cpu_comm_op(), flush=True)
