"""`vton models list|summary` and `vton weights status|prepare`: families, networks, pretrained files."""

from __future__ import annotations

import argparse
import json

from orchestrator.cli.common import UserError


def _stage(cls) -> dict:
    """What a stage is, as ``vton models list`` shows it: networks, phases, inputs, what it builds on."""
    networks = {}
    for spec in cls.networks:
        own = spec.optimizer
        optimizer = {k: v for k, v in (("type", own.type), ("lr", own.lr), ("betas", own.betas),
                                       ("weight_decay", own.weight_decay), ("schedule", own.schedule))
                     if v not in (None, 0.0, "adam")}
        networks[spec.name] = {"role": spec.role, **({"optimizer": optimizer} if optimizer else {})}
    return {"networks": networks,
            "phases": [{"name": p.name, "steps": list(p.networks), "losses": p.losses, "every": p.every}
                       for p in cls.phases],
            "representation": cls.representation.name, "device_form": cls.representation.has_device_form,
            "consumes": dict(cls.consumes), "initializes": dict(cls.initializes),
            **({"chains": dict(cls.chains)} if cls.inference_only else {})}


def _families() -> list[dict]:
    from vton_models.families import FAMILIES
    from vton_models.registry import RECIPES

    listed = []
    known = {r.name for f in FAMILIES for r in f.recipes}
    for family in FAMILIES:
        listed.append({"family": family.name, "paper": family.paper,
                       "import": f"vton import {family.name.replace('_', '-')}" if family.importer else None,
                       "stages": {r.name: _stage(r) for r in family.recipes}})
    extra = {name: _stage(cls) for name, cls in sorted(RECIPES.items()) if name not in known}
    if extra:  # registered at run time (a test's or a user's own recipe)
        listed.append({"family": "(registered at run time)", "paper": "", "import": None, "stages": extra})
    return listed


def _print_families(families: list[dict]) -> None:
    for family in families:
        print(f"{family['family']}: {family['paper']}" + (f"   [{family['import']}]" if family["import"] else ""))
        for name, stage in family["stages"].items():
            nets = ", ".join(f"{n} ({info['role']}{'*' if 'optimizer' in info else ''})"
                             for n, info in stage["networks"].items())
            phases = " -> ".join(f"{p['name']}: [{', '.join(p['steps'])}]" + (f" every {p['every']}" if p["every"] > 1 else "")
                                 for p in stage["phases"])
            print(f"  {name:18s} {nets}")
            if "chains" in stage:
                print(f"  {'':18s} try-on chain (not trained): "
                      + " -> ".join(f"{n} from a {r} model" for n, r in stage["chains"].items()))
                continue
            print(f"  {'':18s} phases {phases};  inputs {stage['representation']}"
                  + (" (device form)" if stage["device_form"] else ""))
            links = [f"consumes {k}={v}" for k, v in stage["consumes"].items()]
            links += [f"starts {k} from {v}" for k, v in stage["initializes"].items()]
            if links:
                print(f"  {'':18s} " + "; ".join(links))
    print("* the recipe sets its own optimizer (vton models list --json shows it)")


def _cmd_models(args: argparse.Namespace) -> int:
    if args.action == "chain":
        return _cmd_chain(args)
    if args.action == "list":
        families = _families()
        if args.json:
            print(json.dumps(families, indent=2))
        else:
            _print_families(families)
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
        head = f"  (auxiliary head {info['aux_parameters']:,d})" if "aux_parameters" in info else ""
        print(f"  {name:4s} {info['parameters']:>13,d} parameters  in={info['input_channels']}  "
              f"out={info['output_shape']}{head}")
    if summary["variants"]:
        print("variants (the other options as given):")
    for variant, networks in summary["variants"].items():
        sizes = "  ".join(f"{name} {info['parameters']:,d} (in={info['input_channels']})" for name, info in networks.items())
        print(f"  {variant:28s} {sizes}")
    return 0


def _cmd_chain(args: argparse.Namespace) -> int:
    """Register a family's try-on chain from registered stages (default: each stage's @champion)."""
    from cluster.settings import apply_stack_env
    from orchestrator.registry.chain import ChainError, chain_recipe, register_chain

    apply_stack_env()
    try:
        chain = chain_recipe(args.family.replace("-", "_"))
        stages = {}
        for item in args.stages:
            stage, sep, uri = item.partition("=")
            if not sep:
                raise ChainError(f"{item!r}: expected STAGE=models:/NAME@ALIAS (stages: {', '.join(chain.chains)})")
            stages[stage] = uri
        uri = register_chain(args.family.replace("-", "_"), stages, name=args.name, champion=not args.no_champion)
    except ChainError as exc:
        raise UserError(str(exc)) from None
    print(f"registered the try-on chain {uri}" + ("" if args.no_champion else f" as models:/{uri.split('/')[1]}@champion"))
    return 0


def _cmd_weights(args: argparse.Namespace) -> int:
    from vton_models import weights

    if args.action == "prepare":
        for path in weights.prepare():
            print(f"ready: {path}")
        return 0
    rows = weights.status()
    for row in rows:
        manual = weights.PRETRAINED[row.name].manual
        state = "present" if row.present else ("BY HAND" if manual else "MISSING")
        print(f"{state:8s} {row.name:24s} {row.path}")
        if not row.present and manual:
            print(f"{'':8s} {'':24s} only stages that use it need it; " + manual.format(path=row.path))
    # Files placed by hand (the face-identity network) are needed only by the stages that use them,
    # which preflight checks; the image build must not fail on them.
    return 0 if all(r.present or weights.PRETRAINED[r.name].manual for r in rows) else 1


def add_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("models", help="model families, their stages (recipes) and networks")
    models_sub = p.add_subparsers(dest="action", required=True, metavar="ACTION",
                                  help="list: every recipe (family stage) and its networks; summary: one recipe's "
                                       "networks with parameter counts")
    listing = models_sub.add_parser("list", help="families, their stages, networks and phases")
    listing.add_argument("--json", action="store_true", help="as JSON on stdout")
    summary = models_sub.add_parser("summary", help="parameter counts, channels, output shapes")
    summary.add_argument("recipe", help="a recipe name from `vton models list`, e.g. cpvton_aux.gmm")
    summary.add_argument("overrides", nargs="*", help="e.g. model.variant=reduced data.image_size=512x384")
    summary.add_argument("--json", action="store_true", help="as JSON on stdout")
    p.set_defaults(handler=_cmd_models)
    chain = models_sub.add_parser("chain", help="register a multi-stage family's try-on chain from its registered "
                                                "stages (vton-<family>@champion)")
    chain.add_argument("family", help="e.g. viton_hd")
    chain.add_argument("stages", nargs="*", metavar="STAGE=URI",
                       help="a stage's registered model (default models:/vton-<family>-<stage>@champion)")
    chain.add_argument("--name", default=None, help="registered name (default vton-<family>)")
    chain.add_argument("--no-champion", action="store_true", help="register without moving @champion")

    p = sub.add_parser("weights", help="pretrained weight files in TORCH_HOME")
    p.add_argument("action", choices=["status", "prepare"],
                   help="status: which pretrained weight files are present; prepare: check and place them")
    p.set_defaults(handler=_cmd_weights)
