"""`vton import` and `vton promote`: released weights into the registry, the promotion gate."""

from __future__ import annotations

import argparse
import sys

from orchestrator.cli.common import UserError
from orchestrator.failures import EXIT_REJECTED


def _cmd_import(args: argparse.Namespace) -> int:
    """Check and load a family's released checkpoints; with --register, register them in MLflow as
    ``vton-<family>-<stage>`` with alias ``champion`` (what later stages consume)."""
    from vton_models.registry import importers

    families = importers()
    family = next((name for name, f in families.items() if args.family in getattr(f.importer, "RELEASE_NAMES", ())),
                  args.family.replace("-", "_"))  # the release's own name (cp-vton) or the family's (cpvton-aux)
    if family not in families:
        raise UserError(f"vton import {args.family}: no released weights to import for that family; families with "
                        f"an importer: {', '.join(f.replace('_', '-') for f in families) or 'none'}")
    importer = families[family].importer
    args = _import_parser(family, importer).parse_args(args.options)
    paths = {stage: getattr(args, stage) for stage in importer.STAGE_FILES if getattr(args, stage)}
    if not paths:
        options = ", ".join(f"--{stage}" for stage in importer.STAGE_FILES)
        raise UserError(f"vton import {family.replace('_', '-')}: give at least one of {options}")
    from orchestrator.config import ConfigError
    from orchestrator.registry.importing import load_released

    try:
        nets = load_released(family, paths, args.set or ())
    except (importer.CheckpointMismatch, FileNotFoundError, ValueError, ConfigError) as exc:
        raise UserError(str(exc)) from None
    for stage, net in nets.items():
        print(f"{stage}: {paths[stage]} loaded ({sum(p.numel() for p in net.parameters()):,} parameters)")
    if not args.register:
        return 0
    from cluster.settings import apply_stack_env
    from orchestrator.registry.importing import register_imported

    apply_stack_env()
    registered = register_imported(family, nets, paths, args.name_prefix, args.set or ())
    for stage, uri in registered.items():
        print(f"registered {uri} as models:/{uri.split('/')[1]}@champion ({stage})")
    chain = families[family].chain
    if chain is None:
        return 0
    missing = [stage for stage in chain.chains if stage not in registered]
    if missing:
        print(f"the try-on chain {chain.name} needs {', '.join(chain.chains)}; import "
              f"{', '.join('--' + m for m in missing)} too, or chain registered stages with "
              f"`vton models chain {family}`")
        return 0
    from orchestrator.registry.chain import register_chain

    uri = register_chain(family, registered, name=args.name_prefix)
    print(f"registered the try-on chain {uri} as models:/{uri.split('/')[1]}@champion "
          f"({' -> '.join(registered[s] for s in chain.chains)})")
    return 0


def _import_parser(family: str, importer) -> argparse.ArgumentParser:
    """The options of ``vton import FAMILY``, from the family's importer (built only when used: the
    families import torch, and `vton --help` must stay fast)."""
    command = argparse.ArgumentParser(prog=f"vton import {family.replace('_', '-')}", description=importer.SOURCE)
    for stage, what in importer.STAGE_FILES.items():
        command.add_argument(f"--{stage}", help=what)
    command.add_argument("--register", action="store_true", help=f"register as vton-{family}-<stage>@champion "
                         f"and, with every stage given, the try-on chain as vton-{family}@champion")
    command.add_argument("--name-prefix", default=f"vton-{family}",
                         help="registered names: <prefix>-<stage>, and <prefix> for the chain")
    command.add_argument("--set", action="append", metavar="[STAGE:]KEY=VALUE",
                         help=f"options the weights were trained with, if not configs/{family}/<stage>.yaml's "
                              "(e.g. data.image_size=512x384, alias:model.num_upsampling_layers=more); repeatable")
    return command


def _cmd_promote(args: argparse.Namespace) -> int:
    """Thin: options -> orchestrator.registry.promote / rollback -> table or JSON."""
    if sum((args.candidate is not None, args.from_sweep is not None, args.rollback)) != 1:
        raise UserError("vton promote: give exactly one of --candidate VERSION, --from-sweep RUN_ID, --rollback")
    if not args.rollback and not args.data:
        raise UserError("vton promote: --data MANIFEST_URL (the held-out test split) is required")
    from cluster.settings import apply_stack_env

    apply_stack_env(urls=[args.data or ""])
    import vton_models  # noqa: F401  - torchvision CPU shim first
    import contextlib

    from orchestrator.registry import promotion as registry
    from vton_models.weights import MissingWeightsError

    try:
        # MLflow writes "View run ..." lines to stdout while the evaluations log their runs;
        # stdout must hold only the table or the JSON (`vton promote ... --json | jq`).
        with contextlib.redirect_stdout(sys.stderr):
            if args.rollback:
                result = registry.rollback(args.model)
            else:
                result = registry.promote(args.model, args.data, candidate=args.candidate,
                                          from_sweep=args.from_sweep, metric=args.metric, mode=args.mode,
                                          min_delta=args.min_delta, threshold=args.threshold, pairs=args.pairs,
                                          workers=args.workers, fid_dims=args.fid_dims,
                                          max_bad_fraction=args.max_bad_fraction)
    except (registry.PromotionError, MissingWeightsError) as exc:
        raise UserError(str(exc)) from None
    except registry.PromotionConflict as exc:
        print(f"error: conflict: {exc}", file=sys.stderr)
        return 1
    print(result.to_json() if args.json else result.table())
    return EXIT_REJECTED if result.decision == "rejected" else 0


def add_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("import", help="import a paper's released checkpoints onto our networks "
                                      "(`vton import FAMILY --help` lists its files, e.g. viton-hd)")
    p.add_argument("family", help="a family with released weights, e.g. viton-hd")
    p.add_argument("options", nargs=argparse.REMAINDER, help="--<stage> FILE ... [--register] [--name-prefix P]")
    p.set_defaults(handler=_cmd_import)

    p = sub.add_parser("promote", help="gate a model version into @champion (or --rollback)",
                       epilog=f"exit status: 0 promoted or rolled back, {EXIT_REJECTED} rejected by the gate, 1 another "
                              "promotion changed the aliases first, 2 bad input")
    p.add_argument("model", help="registered model name")
    p.add_argument("--candidate", default=None, help="the version to promote")
    p.add_argument("--from-sweep", default=None, metavar="RUN_ID",
                   help="a sweep's parent MLflow run; its tag vton.best_model_version names the candidate")
    p.add_argument("--rollback", action="store_true", help="@champion back to @previous (they swap)")
    p.add_argument("--data", default=None, help="URL of the held-out test split's manifest.json")
    p.add_argument("--metric", default="fid", help="gated metric: fid, kid, is, mask_is, ssim, mask_ssim, "
                                                   "ms_ssim, psnr, l1, lpips")
    p.add_argument("--mode", choices=["min", "max"], default=None, help="default: the metric's own direction")
    p.add_argument("--min-delta", type=float, default=0.0, help="the margin the candidate must win by")
    p.add_argument("--threshold", type=float, default=None, help="absolute bar every promoted candidate passes")
    p.add_argument("--max-bad-fraction", type=float, default=0.05, metavar="F",
                   help="reject a candidate trained on more bad (skipped) samples than this fraction, from its "
                        "bad_sample_fraction tag (default 0.05, the trainer's data.max_bad_fraction default)")
    p.add_argument("--pairs", choices=["paired", "unpaired"], default="paired",
                   help="paired (default): scored against ground truth; unpaired: distribution metrics only")
    p.add_argument("--workers", type=int, default=1, help="Ray tasks per evaluation")
    p.add_argument("--fid-dims", type=int, default=2048, choices=[64, 192, 768, 2048],
                   help="Inception features for FID/KID; only 2048 is the protocol (smaller: smoke tests)")
    p.add_argument("--json", action="store_true",
                   help="the decision, both versions' metrics and the aliases as one JSON object on stdout")
    p.set_defaults(handler=_cmd_promote)
