"""P3: samples/s with 2 DDP workers vs 1 (CPU, gloo), target >= 1.6.

Each worker gets 1 CPU and 1 torch thread, so the comparison is what a second worker (and a
second core) buys including gradient all-reduce; the 1-worker x 2-thread figure is reported beside
it, because on this 2-core machine that is the alternative use of the second core.
Run: .venv/bin/python bench/p3_scaling.py
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from _train_common import bench_config, interleaved, machine, make_shards, median, run_ray, write_result

ROUNDS = 2

BATCH = 4


def samples_per_s(manifest: str, workers: int, threads: int) -> float:
    cfg = bench_config(manifest, f"ray.num_workers={workers}", f"ray.cpus_per_worker={threads}",
                       f"ray.threads_per_worker={threads}", f"data.batch_size={BATCH}", "train.steps=120")
    return run_ray(cfg) * BATCH * workers


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        manifest = make_shards(Path(tmp))
        runs = interleaved({
            "1_worker_1_thread": lambda: samples_per_s(manifest, workers=1, threads=1),
            "2_workers_1_thread_each": lambda: samples_per_s(manifest, workers=2, threads=1),
            "1_worker_2_threads": lambda: samples_per_s(manifest, workers=1, threads=2),
        }, ROUNDS)
    one, two = median(runs["1_worker_1_thread"]), median(runs["2_workers_1_thread_each"])
    one_two_threads = median(runs["1_worker_2_threads"])
    write_result("p3_scaling.json", {
        "benchmark": "P3 DDP scaling on CPU (gloo)",
        "speedup_2_workers": round(two / one, 4),
        "target": 1.6,
        "samples_per_s_1_worker_1_thread": round(one, 3),
        "samples_per_s_2_workers_1_thread_each": round(two, 3),
        "samples_per_s_1_worker_2_threads": round(one_two_threads, 3),
        "speedup_2_workers_vs_1_worker_2_threads": round(two / one_two_threads, 4),
        "rounds_samples_per_s": {name: [round(v, 3) for v in values] for name, values in runs.items()},
        "statistic": f"median of {ROUNDS} interleaved rounds",
        "settings": [f"per-worker batch {BATCH}", "unet_sa reduced ngf16 ndf16, 64x48, fp32",
                     "steady state after 3 steps", "1 loader worker per training worker"],
        "machine": machine(),
    })


if __name__ == "__main__":
    main()
