"""train.reuse_fakes: steps/s of the bare loop with the discriminator phase judging the generator
phase's fakes (pix2pixHD's order) against the default order, which generates them twice.

Each stage is set up by ``bench/_families.py`` (the size, widths, batch 4 and registered upstream
stages P2 uses; needs ``vton stack up``) and run in its own process (``_bare_run.py``), both orders
interleaved per round; steps are calibrated on the default order for a ~``--window`` s steady window.
Default stages: the heaviest adversarial stage of each family with a discriminator (the ones whose
profiles named the regenerated fake); ``--recipe all`` measures every stage (a stage without a
discriminator phase gains nothing, which it shows). Results: ``bench/results/family_<family>.json``
under ``reuse_fakes``.

    python bench/reuse_fakes.py [--recipe unet_sa,viton_hd.alias,tree_block.joint,spg_vton.joint] [--rounds 2]
"""

from __future__ import annotations

import argparse

from _train_common import interleaved, machine, median

HEAVIEST_ADVERSARIAL = "unet_sa,viton_hd.alias,tree_block.joint,spg_vton.joint"


def stage_speedup(cfg, rounds: int, window_s: float) -> dict:
    from _families import bare_in_subprocess, calibrated_steps, with_sections

    default = with_sections(cfg, ray={"num_workers": 1, "cpus_per_worker": 2})
    default.train.steps, _ = calibrated_steps(default, window_s)
    reused = with_sections(default, train={"reuse_fakes": True})
    runs = interleaved({"default_order": lambda: bare_in_subprocess(default)["steps_per_s"],
                        "reuse_fakes": lambda: bare_in_subprocess(reused)["steps_per_s"]}, rounds)
    before, after = median(runs["default_order"]), median(runs["reuse_fakes"])
    return {"speedup": round(after / before, 4), "default_order_steps_per_s": round(before, 4),
            "reuse_fakes_steps_per_s": round(after, 4),
            "rounds": {name: [round(v, 4) for v in values] for name, values in runs.items()},
            "steps": default.train.steps}


def main() -> None:
    from _families import measure_families

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--recipe", default=HEAVIEST_ADVERSARIAL, help="all, FAMILY or FAMILY.STAGE (comma list)")
    p.add_argument("--window", type=float, default=30.0, help="seconds of steady-state steps per run")
    p.add_argument("--rounds", type=int, default=2, help="interleaved rounds per stage")
    args = p.parse_args()
    if args.rounds < 1 or args.window <= 0:
        p.error("--rounds must be >= 1 and --window > 0")
    measure_families(args.recipe, "reuse_fakes", lambda cfg: stage_speedup(cfg, args.rounds, args.window), {
        "statistic": f"median of {args.rounds} interleaved round(s), bare loop in its own process, 2 torch threads",
        "steps": f"per stage, for a steady window of ~{args.window:g} s in the default order (calibrated, 30..200)",
        "machine": machine(),
        "command": f"python bench/reuse_fakes.py --recipe {args.recipe} --window {args.window:g} --rounds {args.rounds}"})


if __name__ == "__main__":
    main()
