"""`vton tune`: Ray Tune sweeps of loss weights and learning rates."""

from __future__ import annotations

import argparse
import json

from orchestrator.cli.common import add_config_args


def _cmd_tune(args: argparse.Namespace) -> int:
    """Thin: options -> tune.sweep (plan: every check before Ray; run: Tune on the cluster)."""
    from cluster.settings import apply_stack_env
    from orchestrator.config import load_config
    from orchestrator.jobs.connection import connect
    from tune.sweep import SweepSettings, load_space, plan_sweep, run_sweep, set_worker_start_timeout

    cfg = load_config(args.config, args.overrides)
    space, space_text = load_space(args.space)
    settings = SweepSettings(
        scheduler=args.scheduler, search=args.search, trials=args.trials, max_concurrent=args.max_concurrent,
        metric=args.metric, mode=args.mode, grace_period=args.grace_period, reduction_factor=args.reduction_factor,
        perturbation_interval=args.perturbation_interval, pbt_sync=args.pbt_sync, trial_cpus=args.trial_cpus,
        name=args.name)
    plan = plan_sweep(cfg, space, settings, space_text)
    apply_stack_env()
    set_worker_start_timeout()  # before connect(): it travels in the runtime_env connect() starts
    connect(cfg)
    summary = run_sweep(plan)
    print(summary.table())
    if summary.parent_run_id:
        print(f"  MLflow parent run: {summary.parent_run_id}")
    if args.json:
        print(SWEEP_RESULT_PREFIX + json.dumps(summary.to_dict(), default=str), flush=True)
    if summary.interrupted:
        print("  interrupted: the trials marked so did not finish (the parent run is KILLED)")
        return 130  # the shell's code for a run stopped by Ctrl-C
    return 0 if summary.best_trial() is not None else 1

#: `vton tune --json` ends with this line (Ray and Tune print their own lines before it).
SWEEP_RESULT_PREFIX = "VTON_SWEEP "


def add_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("tune", help="Ray Tune sweeps of loss weights and learning rates (one TorchTrainer per trial)")
    add_config_args(p)
    p.add_argument("--space", required=True, help="YAML: config key -> distribution, e.g. "
                   "'train.lr_d: loguniform(1e-5, 1e-3)' (uniform, loguniform, randint, choice, grid)")
    p.add_argument("--scheduler", choices=["asha", "pbt"], default="asha",
                   help="asha (default): stop poor trials early; pbt: copy good trials' weights and perturb")
    p.add_argument("--search", choices=["random", "optuna"], default="random",
                   help="random (default): sample the space; optuna: TPE guided by finished trials (ASHA only)")
    p.add_argument("--trials", type=int, default=4, help="trials to sample (x grid size with grid(...))")
    p.add_argument("--max-concurrent", type=int, default=2, help="trials running at once (default 2)")
    p.add_argument("--metric", default="val/l1", help="a metric reported with every checkpoint")
    p.add_argument("--mode", choices=["min", "max"], default=None, help="default: known from the metric")
    p.add_argument("--grace-period", type=int, default=None,
                   help="ASHA: steps before a trial can be stopped (default checkpoint.every_n_steps)")
    p.add_argument("--reduction-factor", type=float, default=2.0, help="ASHA")
    p.add_argument("--perturbation-interval", type=int, default=None,
                   help="PBT: steps between exploit/explore decisions (default checkpoint.every_n_steps)")
    p.add_argument("--pbt-sync", action="store_true", help="PBT: perturb all trials together at each interval")
    p.add_argument("--trial-cpus", type=float, default=0.5,
                   help="CPUs of each trial's own actor (its Train workers use ray.num_workers x ray.cpus_per_worker)")
    p.add_argument("--name", default=None, help="sweep name (default <run name>-<scheduler>-<time>)")
    p.add_argument("--json", action="store_true", help=f"end with a '{SWEEP_RESULT_PREFIX.strip()} {{json}}' line")
    p.set_defaults(handler=_cmd_tune)
