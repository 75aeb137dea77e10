"""`vton doctor`: prove a cluster (every node: GPUs and driver, bucket, MLflow, weights, disk, shm;
an all-reduce across the workers) before a long run on it."""

from __future__ import annotations

import argparse
import sys

from orchestrator.cli.common import UserError, add_env_file_arg, apply_env_file


def _cmd_doctor(args: argparse.Namespace) -> int:
    from orchestrator.config import load_config
    from orchestrator.jobs import submit as jobs
    from orchestrator.jobs.doctor import run_doctor

    apply_env_file(args.env_file)
    cfg = load_config(args.config, args.overrides)
    target = args.address or jobs.job_address(cfg)
    print(f"doctor: checking every node of {target} as seen from its own environment", file=sys.stderr)
    try:
        report = run_doctor(cfg, address=target, env_file=args.env_file,
                            on_line=print if args.verbose else (lambda _line: None))
    except (ValueError, ConnectionError, RuntimeError) as exc:
        raise UserError(str(exc)) from None
    print(report.to_json() if args.json else report.table())
    return 0 if report.ok else 1


def add_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("doctor", help="check a cluster before training on it (every node; exit 1 on a failure)")
    p.add_argument("config", nargs="?", default=None,
                   help="the run config to check for (its bucket, manifest, weights, workers); default: defaults")
    p.add_argument("overrides", nargs="*", help="dotted overrides, e.g. ray.num_workers=8 ray.use_gpu=true")
    p.add_argument("--address", default=None, help="Ray dashboard URL; default: RAY_ADDRESS or the local stack's")
    add_env_file_arg(p)
    p.add_argument("--json", action="store_true", help="the checks as one JSON object on stdout")
    p.add_argument("--verbose", action="store_true", help="stream the doctor job's logs")
    p.set_defaults(handler=_cmd_doctor)
