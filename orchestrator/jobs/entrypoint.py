"""What a Ray job runs: ``ray job submit -- python -m orchestrator.jobs.entrypoint CONFIG [overrides]``.

`vton submit` passes the already-resolved config in ``VTON_RESOLVED_CONFIG`` (so a config file
outside the uploaded working dir still works); by hand, pass a config path and overrides. The last
line printed is ``VTON_RESULT {json}``, which `vton submit` and `vton demo` parse.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys

from orchestrator import credentials
from orchestrator.config import Config, ConfigError, config_from_dict, load_config

RESULT_PREFIX = "VTON_RESULT "
CONFIG_ENV = "VTON_RESOLVED_CONFIG"


def resolve(argv: list[str], required: bool = True) -> Config:
    """The run config: a path and overrides, else ``VTON_RESOLVED_CONFIG``; with ``required=False``
    the defaults when neither is given (the doctor checks a cluster without a run in mind)."""
    parser = argparse.ArgumentParser(prog="python -m orchestrator.jobs.entrypoint")
    parser.add_argument("config", nargs="?", help="YAML run config (omit when VTON_RESOLVED_CONFIG is set)")
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_args(argv)
    if args.config:
        return load_config(args.config, args.overrides)
    if os.environ.get(CONFIG_ENV):
        return config_from_dict(json.loads(os.environ[CONFIG_ENV]))
    if not required:
        return load_config(None, args.overrides)
    parser.error(f"give a config path or set {CONFIG_ENV}")
    raise AssertionError  # unreachable


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        cfg = resolve(sys.argv[1:] if argv is None else argv)
        credentials.load()  # the keys arrive by reference (VTON_CREDENTIALS_FILE) or with the node
        import ray

        from orchestrator.jobs.capacity import Capacity
        from orchestrator.jobs.launch import fit
        from orchestrator.jobs.preflight import preflight

        ray.init(address=os.environ.get("RAY_ADDRESS", "auto"), log_to_driver=True)
        preflight(cfg, Capacity.of_ray_cluster())
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    outcome = fit(cfg)
    print(RESULT_PREFIX + outcome.to_json(), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
