"""One bare training loop (no Ray) from a config file, in its own process: prints one JSON line.

Why a process of its own: its peak resident memory is then the loop's, and the memory a batch adds
can be read off two runs at two batch sizes (``bench/p2_overhead.py``). The peak is ``VmHWM``, which
a new program starts afresh; ``ru_maxrss`` would carry the forking parent's peak across ``exec``.
"""

from __future__ import annotations

import json
import resource
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize()


def peak_rss_bytes() -> int:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmHWM:"))


def main(path: str) -> None:
    import torch

    import vton_models  # noqa: F401  - first, so torchvision imports on CPU-only torch
    from orchestrator.config import config_from_dict
    from orchestrator.train.loop import GanLoop, WorkerContext

    cfg = config_from_dict(json.loads(Path(path).read_text()))
    torch.set_num_threads(cfg.ray.worker_threads)
    loop = GanLoop(cfg, WorkerContext())
    before = rss_bytes()  # networks, optimizers and consumed stages built; no batch yet
    result = loop.run()
    peak = peak_rss_bytes()
    print(json.dumps({"steps_per_s": float(result.last_metrics["perf/steady_steps_per_s"]),
                      "rss_before_bytes": before, "rss_peak_bytes": peak, "batch_size": cfg.data.batch_size}))


if __name__ == "__main__":
    main(sys.argv[1])
