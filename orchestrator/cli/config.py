"""`vton config show`: the resolved run config, as it is logged to MLflow."""

from __future__ import annotations

import argparse
import json

from orchestrator.cli.common import add_config_args


def _cmd_config(args: argparse.Namespace) -> int:
    from orchestrator.config import load_config

    cfg = load_config(args.config, args.overrides)
    if args.format == "json":
        print(json.dumps(cfg.to_dict(), indent=2))
    elif args.format == "flat":
        for key, value in cfg.flat().items():
            print(f"{key}={value}")
    else:
        print(cfg.to_yaml(), end="")
    return 0


def add_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("config", help="resolve and print a run config")
    config_sub = p.add_subparsers(dest="action", required=True, metavar="ACTION", help="show")
    show = config_sub.add_parser("show", help="print the resolved config (what gets logged to MLflow)")
    add_config_args(show)
    show.add_argument("--format", choices=["yaml", "json", "flat"], default="yaml",
                      help="yaml (default), json, or flat section.key=value lines (what overrides take)")
    show.set_defaults(handler=_cmd_config)
