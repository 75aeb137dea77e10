"""Where a training step's time goes: a ``torch.profiler`` table of one stage's top operators (CPU here).

The stage is set up by ``bench/_families.py`` (the size, widths and registered upstream stages P2 and
P3 use) and run by the production loop in this process; after 3 warm-up steps, ``--steps`` steps are
recorded (the profiler's ``schedule``, advanced from the loop's ``before_step`` hook). Two tables are
written beside the family's result, ``bench/results/profile_<family>_<stage>.txt``:

* operators by self CPU time (what PyTorch spends, kernel by kernel);
* our own Python functions (``with_stack``) by inclusive CPU time per step, which is where our own
  costs show: a loss computing the same features twice, a mask rebuilt per term, Python between ops.

With ``--recipe FAMILY`` the family's slowest stage is taken from ``bench/results/family_<family>.json``
(the lowest bare-loop steps/s that ``bench/p2_overhead.py --recipe`` measured).

Run: .venv/bin/python bench/profile_stage.py --recipe tree_block.joint   (the local stack up)
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"


OUR_CODE = ("orchestrator/", "vton_models/", "shards/")


def slowest_stage(family: str) -> str:
    path = RESULTS / f"family_{family}.json"
    if not path.is_file():
        raise SystemExit(f"{path} not found: run bench/p2_overhead.py --recipe {family} first, or name the stage")
    stages = json.loads(path.read_text())["stages"]
    return min(stages, key=lambda s: stages[s]["p2"]["bare_loop_steps_per_s"])


def profile(cfg, steps: int, warmup: int = 3):
    import torch
    from torch.profiler import ProfilerActivity, schedule

    from orchestrator.train.loop import GanLoop, LoopHooks, WorkerContext

    cfg.train.steps = warmup + 1 + steps + 1
    torch.set_num_threads(2)  # as bench/p2_overhead.py's bare loop (1 worker x 2 CPUs)
    prof = torch.profiler.profile(activities=[ProfilerActivity.CPU], with_stack=True, record_shapes=False,
                                  schedule=schedule(wait=warmup, warmup=1, active=steps, repeat=1))
    seen = {"step": -1}

    def before_step(_network: str, _strategy, step: int) -> None:
        if step != seen["step"]:  # one profiler step per training step (several networks step in it)
            if seen["step"] >= 0:
                prof.step()
            seen["step"] = step

    loop = GanLoop(cfg, WorkerContext(), LoopHooks(before_step=before_step))
    with prof:
        loop.run()
    return prof


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--recipe", required=True, help="FAMILY.STAGE, or FAMILY for its slowest stage")
    p.add_argument("--steps", type=int, default=5, help="profiled steps")
    p.add_argument("--rows", type=int, default=25)
    args = p.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from _families import family_of_recipe, make_family_shards, stack_and_weights, wired_stages

    family, stage_name = family_of_recipe(args.recipe)
    stage_name = stage_name or slowest_stage(family)
    home = stack_and_weights()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            manifest = make_family_shards(family, Path(tmp))
            (stage,) = wired_stages(family, manifest, 10, [stage_name])
            prof = profile(stage.cfg, args.steps)
    finally:
        home.cleanup()
    averages = prof.key_averages()
    step_us = sum(e.cpu_time_total for e in averages if e.key.startswith("ProfilerStep"))  # wall time of the steps
    # Operators only: the Python tracer also records every thread's Python calls, among them the loader's
    # and Ray's idle threads blocked on a lock for the whole window, which are no cost of the step.
    ops = sorted((e for e in averages if "::" in e.key and ".py(" not in e.key), key=lambda e: -e.self_cpu_time_total)
    op_us = sum(e.self_cpu_time_total for e in ops)
    by_op = "\n".join(f"{e.self_cpu_time_total / 1e3 / args.steps:10.1f} ms/step {100 * e.self_cpu_time_total / step_us:6.1f}%"
                      f" {e.count // args.steps:6d} calls/step  {e.key}" for e in ops[:args.rows])
    ours = [e for e in averages if e.key.startswith(OUR_CODE)]
    by_ours = "\n".join(f"{e.cpu_time_total / 1e3 / args.steps:10.1f} ms/step {e.count // args.steps:6d} calls/step  {e.key}"
                        for e in sorted(ours, key=lambda e: -e.cpu_time_total)[:args.rows])
    total_us = step_us
    out = RESULTS / f"profile_{family}_{stage_name}.txt"
    out.write_text(
        f"# {stage.cfg.model.recipe}: {args.steps} profiled steps after 3 warm-up steps, CPU, "
        f"{torch_threads()} torch threads, batch {stage.cfg.data.batch_size}, {stage.cfg.data.image_size}\n"
        f"# step wall time {total_us / 1e3 / args.steps:.1f} ms, of which operators' self time "
        f"{op_us / 1e3 / args.steps:.1f} ms ({100 * op_us / max(total_us, 1):.0f}%; the rest: Python between "
        "operators, the profiler's own tracing, waiting for the loader)\n"
        f"# command: python bench/profile_stage.py --recipe {args.recipe} --steps {args.steps}\n\n"
        f"## operators by self CPU time (per step, % of the step's wall time)\n{by_op}\n\n## our Python functions by CPU time (inclusive)\n{by_ours}\n")
    print(by_op)
    print(f"written {out}")


def torch_threads() -> int:
    import torch

    return torch.get_num_threads()


if __name__ == "__main__":
    main()
