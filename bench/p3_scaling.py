"""P3: samples/s with 2 DDP workers vs 1 (CPU, gloo), target >= 1.6.

Each worker gets 1 CPU and 1 torch thread, so the comparison is what a second worker (and a
second core) buys including gradient all-reduce; the 1-worker x 2-thread figure is reported beside
it, because on this 2-core machine that is the alternative use of the second core.
Run: .venv/bin/python bench/p3_scaling.py                      # seed 000's demo model (p3_scaling.json)
     .venv/bin/python bench/p3_scaling.py --recipe all         # every stage of every family, the stack up

With ``--recipe`` each stage is set up by ``bench/_families.py`` (batch 4 per worker) and measured as
1 worker x 1 thread vs 2 workers x 1 thread; results go to ``bench/results/family_<family>.json``
under ``p3``.
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


def stage_scaling(cfg, rounds: int, window_s: float) -> dict:
    from _families import calibrated_steps, with_sections

    one_thread = with_sections(cfg, ray={"cpus_per_worker": 1, "threads_per_worker": 1})
    one_thread.train.steps, _ = calibrated_steps(one_thread, window_s, lo=20, hi=150)

    def samples_per_s_of(workers: int) -> float:
        run = with_sections(one_thread, ray={"num_workers": workers})
        return run_ray(run) * run.data.batch_size * workers

    runs = interleaved({"1_worker_1_thread": lambda: samples_per_s_of(1),
                        "2_workers_1_thread_each": lambda: samples_per_s_of(2)}, rounds)
    one, two = median(runs["1_worker_1_thread"]), median(runs["2_workers_1_thread_each"])
    return {"speedup_2_workers": round(two / one, 4), "target": 1.6,
            "samples_per_s_1_worker_1_thread": round(one, 3), "samples_per_s_2_workers_1_thread_each": round(two, 3),
            "rounds_samples_per_s": {name: [round(v, 3) for v in values] for name, values in runs.items()},
            "steps": one_thread.train.steps}


def main_families(arg: str, window_s: float, rounds: int) -> None:
    from _families import BATCH, measure_families

    measure_families(arg, "p3", lambda cfg: stage_scaling(cfg, rounds, window_s), {
        "statistic": f"median of {rounds} interleaved round(s)",
        "steps": f"per stage, for a steady window of ~{window_s:g} s at 1 worker (calibrated, 20..150)",
        "settings": [f"per-worker batch {BATCH}", "DDP on gloo, private Ray", "1 loader worker per worker"],
        "machine": machine(), "command": f"python bench/p3_scaling.py --recipe {arg} --window {window_s:g} --rounds {rounds}"})


def main() -> None:
    from _families import family_cli

    family_cli(__doc__.split("\n")[0], 20.0, main_families, main_demo)


def main_demo() -> None:
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
