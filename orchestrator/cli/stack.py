"""`vton stack up|down|status`: the local stack (Ray head, S3 server, MLflow server)."""

from __future__ import annotations

import argparse

from orchestrator.cli.common import UserError


def _cmd_stack(args: argparse.Namespace) -> int:
    from cluster import stack
    from cluster.settings import StackSettings

    settings = StackSettings.from_env(args.state_dir)
    if args.action == "up":
        if args.nodes < 1:
            raise UserError(f"--nodes {args.nodes}: must be >= 1 (the head counts as one node)")
        stack.up(settings, nodes=args.nodes, node_cpus=args.node_cpus)
        return 0
    if args.action == "down":
        stack.down(settings)
        return 0
    rows = stack.status(settings) + stack.node_statuses(settings)
    for row in rows:
        pid = f"pid {row.pid}" if row.pid else "-"
        print(f"{row.name:10s} {row.state:9s} {pid:10s} {row.address}   ({row.description})")
    print(f"state dir: {settings.state_dir}")
    return 0 if all(r.state == "running" for r in rows) else 1


def add_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("stack", help="local stack: Ray head, S3 server, MLflow server")
    p.add_argument("action", choices=["up", "down", "status"],
                   help="up: start the S3 server, MLflow and a Ray head (idempotent); down: stop them; status")
    p.add_argument("--state-dir", default=None, help="default: $VTON_STACK_DIR or ./.vton/stack")
    p.add_argument("--nodes", type=int, default=1,
                   help="up: Ray nodes in all, the head included; each extra one is a worker raylet on this "
                        "machine with its own temp dir and a custom resource vton_node_<i> (default 1)")
    p.add_argument("--node-cpus", type=int, default=2, help="up: logical CPUs of each extra node (default 2)")
    p.set_defaults(handler=_cmd_stack)
