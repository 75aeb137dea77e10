"""P2: training steps/s under Ray Train with 1 worker vs the bare PyTorch loop (target >= 0.95).

Same model, batch, data and threads; the loop is the same code, so the ratio is what Ray Train
(worker actor, process group, report plumbing) costs per step.

120 steps per run (was 40): the steady-state window then spans ~28 s instead of ~9 s. Ray Train
starts six helper actors (controller, placement-group cleaner, preemption watcher, dataset
manager, autoscaling coordinator, synchronization) around the time training starts, each spending
~2-3 s of CPU importing; on 2 cores a 9 s window caught much of that one-off cost and its
rounds scattered widely (bare 0.32-3.88 steps/s). In steady state those actors and Ray's daemons
take ~1% of a core each (~12% in all, sampled with psutil over a 15 s window of a 200-step run).
Run: .venv/bin/python bench/p2_overhead.py                      # seed 000's demo model (p2_overhead.json)
     .venv/bin/python bench/p2_overhead.py --recipe all         # every stage of every family, the stack up
     .venv/bin/python bench/p2_overhead.py --recipe tree_block.app,spg_vton

With ``--recipe`` each stage (set up by ``bench/_families.py``) gets, besides the ratio, its peak memory
per sample on CPU: the loop's resident-memory peak over what it held before its first batch, at batch
4 and at batch 2 in fresh processes; the difference over the 2 samples is what one more sample costs
(activations, their gradients, the loader's batch), the rest (weights, optimizer state, consumed
stages) is fixed. Results go to ``bench/results/family_<family>.json`` under ``p2``.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from _train_common import bench_config, interleaved, machine, make_shards, median, run_bare, run_ray, write_result

ROUNDS = 3


def stage_overhead(cfg, rounds: int, window_s: float) -> dict:
    """Ray Train (1 worker, 2 CPUs) vs the bare loop in its own process, and memory per sample."""
    from _families import BATCH, bare_in_subprocess, calibrated_steps, with_sections

    ray_cfg = with_sections(cfg, ray={"num_workers": 1, "cpus_per_worker": 2})
    steps, full = calibrated_steps(ray_cfg, window_s)
    ray_cfg.train.steps = steps
    runs = interleaved({"bare": lambda: bare_in_subprocess(ray_cfg)["steps_per_s"], "ray": lambda: run_ray(ray_cfg)},
                       rounds)
    small = bare_in_subprocess(ray_cfg, steps=12, batch=BATCH // 2)
    growth = {b: r["rss_peak_bytes"] - r["rss_before_bytes"] for b, r in ((BATCH, full), (BATCH // 2, small))}
    mib = 1 << 20
    return {
        "ratio": round(median(runs["ray"]) / median(runs["bare"]), 4), "target": 0.95,
        "ray_train_steps_per_s": round(median(runs["ray"]), 4), "bare_loop_steps_per_s": round(median(runs["bare"]), 4),
        "rounds": {name: [round(v, 4) for v in values] for name, values in runs.items()}, "steps": steps,
        "memory_cpu": {
            "peak_rss_growth_mib": {str(b): round(v / mib, 1) for b, v in growth.items()},
            "per_sample_mib": round((growth[BATCH] - growth[BATCH // 2]) / (BATCH - BATCH // 2) / mib, 1),
            "fixed_before_first_batch_mib": round(full["rss_before_bytes"] / mib, 1),
        },
    }


def main_families(arg: str, window_s: float, rounds: int) -> None:
    from _families import measure_families

    measure_families(arg, "p2", lambda cfg: stage_overhead(cfg, rounds, window_s), {
        "statistic": f"median of {rounds} interleaved round(s)",
        "steps": f"per stage, for a steady window of ~{window_s:g} s (calibrated by a 12-step bare run, 30..200)",
        "ray": "1 worker x 2 CPUs (2 torch threads), private Ray; bare: the same loop in its own process",
        "machine": machine(), "command": f"python bench/p2_overhead.py --recipe {arg} --window {window_s:g} --rounds {rounds}"})


def main() -> None:
    from _families import family_cli

    family_cli(__doc__.split("\n")[0], 30.0, main_families, main_demo)


def main_demo() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        manifest = make_shards(Path(tmp))
        settings = ["ray.num_workers=1", "ray.cpus_per_worker=2", "data.batch_size=4", "train.steps=120"]
        cfg = bench_config(manifest, *settings)
        runs = interleaved({"bare": lambda: run_bare(cfg), "ray": lambda: run_ray(cfg)}, ROUNDS)
    bare, ray_train = median(runs["bare"]), median(runs["ray"])
    write_result("p2_overhead.json", {
        "benchmark": "P2 Ray Train overhead",
        "ratio": round(ray_train / bare, 4),
        "target": 0.95,
        "ray_train_steps_per_s": round(ray_train, 4),
        "bare_loop_steps_per_s": round(bare, 4),
        "rounds": {name: [round(v, 4) for v in values] for name, values in runs.items()},
        "statistic": f"median of {ROUNDS} interleaved rounds",
        "settings": settings + ["model: unet_sa reduced ngf16 ndf16, 64x48, fp32, steady state after 3 steps"],
        "machine": machine(),
    })


if __name__ == "__main__":
    main()
