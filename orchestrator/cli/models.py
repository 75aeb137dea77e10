"""`vton models list|summary` and `vton weights status|prepare`: families, networks, pretrained files."""

from __future__ import annotations

import argparse
import json

from orchestrator.cli.common import UserError


def _cmd_models(args: argparse.Namespace) -> int:
    from vton_models.registry import RECIPES

    if args.action == "list":
        for name, cls in sorted(RECIPES.items()):
            nets = ", ".join(f"{s.name} ({s.role})" for s in cls.networks)
            print(f"{name:16s} {nets}   representation={cls.representation.name}")
        return 0
    from orchestrator.config import load_config
    from vton_models.registry import get_recipe
    from vton_models.summary import summarize

    cfg = load_config(None, [f"model.recipe={args.recipe}", *args.overrides])
    try:
        get_recipe(cfg.model.recipe)
        summary = summarize(cfg.model.recipe, cfg.model.options, tuple(cfg.data.image_size))
    except ValueError as exc:
        raise UserError(str(exc)) from None
    if args.json:
        print(json.dumps(summary, indent=2))
        return 0
    print(f"recipe {summary['recipe']} at {summary['image_size'][0]}x{summary['image_size'][1]}")
    for name, info in summary["networks"].items():
        print(f"  {name:4s} {info['parameters']:>13,d} parameters  in={info['input_channels']}  "
              f"out={info['output_shape']}")
    return 0

def _cmd_weights(args: argparse.Namespace) -> int:
    from vton_models import weights

    if args.action == "prepare":
        for path in weights.prepare():
            print(f"ready: {path}")
        return 0
    rows = weights.status()
    for row in rows:
        print(f"{'present' if row.present else 'MISSING':8s} {row.name:24s} {row.path}")
    return 0 if all(r.present for r in rows) else 1


def add_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("models", help="registered recipes and their networks")
    models_sub = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    models_sub.add_parser("list")
    summary = models_sub.add_parser("summary", help="parameter counts, channels, output shapes")
    summary.add_argument("recipe")
    summary.add_argument("overrides", nargs="*", help="e.g. model.variant=reduced data.image_size=512x384")
    summary.add_argument("--json", action="store_true")
    p.set_defaults(handler=_cmd_models)

    p = sub.add_parser("weights", help="pretrained weight files in TORCH_HOME")
    p.add_argument("action", choices=["status", "prepare"])
    p.set_defaults(handler=_cmd_weights)
