"""The `vton` command line.

Every handler imports what it needs lazily: `vton stack status` must answer in well under a
second, without importing torch or Ray. Errors a user can fix (bad config, taken port, missing
binary) are printed as one clear line and exit with status 2; nothing prints a traceback for them.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Sequence

EXIT_USAGE = 2


class UserError(Exception):
    """An error the user can fix; printed without a traceback."""


# ------------------------------------------------------------------------------------ stack


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


# ----------------------------------------------------------------------------------- config


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


# ------------------------------------------------------------------------------------ shard


def _parse_size(text: str) -> tuple[int, int]:
    try:
        height, width = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise UserError(f"--size {text!r}: expected HEIGHTxWIDTH, e.g. 64x48") from None
    return height, width


def _cmd_shard(args: argparse.Namespace) -> int:
    from cluster.settings import apply_stack_env

    apply_stack_env()
    if args.action == "synth":
        from shards.synthetic import synthesize

        report = synthesize(args.out, n=args.n, size=_parse_size(args.size), seed=args.seed)
        print(json.dumps(report, indent=2, default=str))
        return 0
    if args.action == "build":
        from shards.writer import build_shards

        manifest = build_shards(args.layout, args.src, args.split, args.dest, shard_size_bytes=args.shard_size,
                                workers=args.workers, strict=not args.skip_incomplete)
        stats = manifest.build_stats
        print(f"{stats.manifest_url}: {stats.samples} samples in {stats.shards} shards "
              f"({stats.uploaded} uploaded, {stats.skipped} already stored) in {stats.seconds:.1f}s")
        return 0
    from shards.writer import verify_shards

    report = verify_shards(args.manifest)
    print(report.summary())
    return 0 if report.ok else 1


# ----------------------------------------------------------------------------------- models


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


# ------------------------------------------------------------------------------------ train


def _cmd_train(args: argparse.Namespace) -> int:
    """Train on this machine: an in-process Ray instance (or ray.address), workers as configured."""
    from cluster.settings import apply_stack_env, match_stack_auth_mode
    from orchestrator.config import load_config

    cfg = load_config(args.config, args.overrides)
    apply_stack_env()
    match_stack_auth_mode(cfg.ray.address or os.environ.get("RAY_ADDRESS"))
    import ray

    from orchestrator.launch import fit, gpus_on_this_machine, preflight

    preflight(cfg, gpus_on_this_machine())
    ray.init(address=cfg.ray.address or None, include_dashboard=False, log_to_driver=True)
    outcome = fit(cfg)
    print(outcome.to_json() if args.json else _describe_outcome(outcome.__dict__))
    return 0


def _describe_outcome(result: dict) -> str:
    lines = [f"run {result['name']}: {result['steps']} steps"]
    if result.get("mlflow_run_id"):
        lines.append(f"  MLflow run: {result['mlflow_run_id']}")
    if result.get("model_version"):
        lines.append(f"  registered model version: {result['model_version']}")
    for label in ("val_before", "val_after"):
        if result.get(label):
            values = "  ".join(f"{k.split('/')[-1]}={v:.4f}" for k, v in result[label].items() if k != "val/images")
            lines.append(f"  {label}: {values}")
    return "\n".join(lines)


def _cmd_submit(args: argparse.Namespace) -> int:
    from orchestrator import jobs
    from orchestrator.config import load_config

    cfg = load_config(args.config, args.overrides)  # validated before anything reaches the cluster
    try:
        client, job_id = jobs.submit(cfg, image=args.image, requirements=args.requirements)
    except (ValueError, ConnectionError) as exc:  # --image/--requirements problems, an unreachable head
        raise UserError(str(exc)) from None
    print(f"submitted job {job_id}")
    if args.no_wait:
        return 0
    outcome = jobs.wait(client, job_id, jobs.progress_printer(args.verbose))
    if outcome.status != "SUCCEEDED" or outcome.result is None:
        print("\n".join(outcome.logs.splitlines()[-40:]), file=sys.stderr)
        print(f"error: job {job_id} ended {outcome.status}", file=sys.stderr)
        return 1
    print(_describe_outcome(outcome.result))
    return 0


def _cmd_pipeline(args: argparse.Namespace) -> int:
    """Thin: orchestrator.pipeline orders, checks and submits the stages; a failed stage stops it."""
    from cluster.settings import apply_stack_env

    apply_stack_env()
    import vton_models  # noqa: F401
    from orchestrator import jobs
    from orchestrator.pipeline import check_stages, load_stages, run_pipeline

    stages = load_stages(args.directory, args.overrides)
    check_stages(stages)  # GPUs are the cluster's: each job's entrypoint checks them where it runs
    print("pipeline: " + " -> ".join(f"{s.name} ({s.cfg.model.recipe})" for s in stages))
    try:
        results = run_pipeline(stages, jobs.progress_printer(args.verbose))
    except RuntimeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for r in results:
        print(f"{r.stage:8s} job {r.job_id}  MLflow run {r.mlflow_run_id}  model {r.model_uri}")
    return 0


def _cmd_jobs(args: argparse.Namespace) -> int:
    """Thin: the Job SDK calls live in orchestrator.jobs; an unknown ID is a user error."""
    import time

    from orchestrator import jobs

    try:
        if args.action == "status":
            summary = jobs.status(args.job_id, args.address)
            print(f"job {summary.job_id}: {summary.status}" + (f" ({summary.message})" if summary.message else ""))
            if summary.run_name:
                print(f"  run name:   {summary.run_name}")
            for label, stamp in (("started", summary.started), ("ended", summary.ended)):
                if stamp:
                    print(f"  {label + ':':11s} {time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(stamp))}")
            if summary.mlflow_run_id:
                print(f"  MLflow run: {summary.mlflow_run_id}")
            return 0
        if args.action == "logs":
            if args.follow:
                outcome = jobs.follow(args.job_id, address=args.address)
                return 0 if outcome.status == "SUCCEEDED" else 1
            print(jobs.logs(args.job_id, args.address), end="")
            return 0
        final = jobs.stop(args.job_id, args.address)
        print(f"job {args.job_id}: {final}")
        return 0 if final in ("STOPPED", "SUCCEEDED", "FAILED") else 1
    except (RuntimeError, ConnectionError) as exc:  # no cluster to ask, or the Job SDK's 404 for an unknown ID
        if "does not exist" in str(exc) or "status code 404" in str(exc):
            raise UserError(f"no job {args.job_id!r} on {args.address or jobs.job_address()}") from None
        raise UserError(str(exc)) from None


def _cmd_demo(args: argparse.Namespace) -> int:
    from orchestrator.demo import run_demo

    return run_demo(args.overrides, verbose=args.verbose)


# ------------------------------------------------------------------------------- eval, tryon


def _cmd_eval(args: argparse.Namespace) -> int:
    """Thin: options -> orchestrator.evaluate.run_eval -> table + JSON."""
    from cluster.settings import apply_stack_env

    apply_stack_env()
    import vton_models  # noqa: F401  - torchvision CPU shim first
    from orchestrator.evaluate import EvalError, run_eval
    from vton_models.weights import MissingWeightsError

    try:
        result = run_eval(args.model or args.checkpoint, args.data, pairs=args.pairs, workers=args.workers,
                          threads_per_worker=args.threads, log_to_mlflow=not args.no_mlflow,
                          fid_dims=args.fid_dims)
    except (EvalError, MissingWeightsError) as exc:
        raise UserError(str(exc)) from None
    print(result.table())
    if result.mlflow_run_id:
        print(f"  MLflow run: {result.mlflow_run_id}")
    if args.out:
        from pathlib import Path

        Path(args.out).write_text(result.to_json())
        print(f"  wrote {args.out}")
    return 0


def _cmd_tryon(args: argparse.Namespace) -> int:
    from cluster.settings import apply_stack_env

    apply_stack_env()
    import vton_models  # noqa: F401
    from orchestrator.evaluate import EvalError
    from orchestrator.tryon import run_tryon

    try:
        paths = run_tryon(args.model, args.person, args.cloth, args.out, pose=args.pose, parse=args.parse,
                          cloth_mask=args.cloth_mask, batch_size=args.batch_size)
    except EvalError as exc:
        raise UserError(str(exc)) from None
    print(f"wrote {len(paths) - 1} try-on images and {paths[-1]}")
    return 0


def _cmd_import(args: argparse.Namespace) -> int:
    """Check and load released VITON-HD checkpoints; with --register, register them in MLflow as
    ``vton-viton_hd-<stage>`` with alias ``champion`` (what later stages consume)."""
    from vton_models.families.viton_hd.importer import CheckpointMismatch, load_all

    paths = {stage: path for stage, path in (("seg", args.seg), ("gmm", args.gmm), ("alias", args.alias)) if path}
    if not paths:
        raise UserError("vton import viton-hd: give at least one of --seg, --gmm, --alias")
    try:
        nets = load_all(paths)
    except (CheckpointMismatch, FileNotFoundError) as exc:
        raise UserError(str(exc)) from None
    for stage, net in nets.items():
        print(f"{stage}: {paths[stage]} loaded ({sum(p.numel() for p in net.parameters()):,} parameters)")
    if not args.register:
        return 0
    from cluster.settings import apply_stack_env
    from orchestrator.importing import register_imported

    apply_stack_env()
    for stage, uri in register_imported(nets, paths, args.name_prefix).items():
        print(f"registered {uri} as models:/{uri.split('/')[1]}@champion ({stage})")
    return 0


# ---------------------------------------------------------------------------------- promote


def _cmd_promote(args: argparse.Namespace) -> int:
    """Thin: options -> orchestrator.registry.promote / rollback -> table or JSON."""
    if sum((args.candidate is not None, args.from_sweep is not None, args.rollback)) != 1:
        raise UserError("vton promote: give exactly one of --candidate VERSION, --from-sweep RUN_ID, --rollback")
    if not args.rollback and not args.data:
        raise UserError("vton promote: --data MANIFEST_URL (the held-out test split) is required")
    from cluster.settings import apply_stack_env

    apply_stack_env()
    import vton_models  # noqa: F401  - torchvision CPU shim first
    import contextlib

    from orchestrator import registry
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
                                          workers=args.workers, fid_dims=args.fid_dims)
    except (registry.PromotionError, MissingWeightsError) as exc:
        raise UserError(str(exc)) from None
    except registry.PromotionConflict as exc:
        print(f"error: conflict: {exc}", file=sys.stderr)
        return 1
    print(result.to_json() if args.json else result.table())
    return 0


# ------------------------------------------------------------------------------------- tune


def _cmd_tune(args: argparse.Namespace) -> int:
    """Thin: options -> tune.sweep (plan: every check before Ray; run: Tune on the cluster)."""
    from cluster.settings import apply_stack_env
    from orchestrator.config import load_config
    from tune.sweep import SweepSettings, connect, load_space, plan_sweep, run_sweep

    cfg = load_config(args.config, args.overrides)
    space, space_text = load_space(args.space)
    settings = SweepSettings(
        scheduler=args.scheduler, search=args.search, trials=args.trials, max_concurrent=args.max_concurrent,
        metric=args.metric, mode=args.mode, grace_period=args.grace_period, reduction_factor=args.reduction_factor,
        perturbation_interval=args.perturbation_interval, pbt_sync=args.pbt_sync, trial_cpus=args.trial_cpus,
        name=args.name)
    plan = plan_sweep(cfg, space, settings, space_text)
    apply_stack_env()
    connect(cfg)
    summary = run_sweep(plan)
    print(summary.table())
    if summary.parent_run_id:
        print(f"  MLflow parent run: {summary.parent_run_id}")
    if args.json:
        print(SWEEP_RESULT_PREFIX + json.dumps(summary.to_dict(), default=str), flush=True)
    return 0 if summary.best_trial() is not None else 1


#: `vton tune --json` ends with this line (Ray and Tune print their own lines before it).
SWEEP_RESULT_PREFIX = "VTON_SWEEP "


# ------------------------------------------------------------------------------------ parser


def _add_config_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("config", help="YAML run config, e.g. configs/unet_sa/viton_hd.yaml")
    p.add_argument("overrides", nargs="*", help="dotted overrides: section.key=value (train.lr_d=5e-5)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vton", description="Train virtual try-on GANs at cluster scale.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("stack", help="local stack: Ray head, S3 server, MLflow server")
    p.add_argument("action", choices=["up", "down", "status"])
    p.add_argument("--state-dir", default=None, help="default: $VTON_STACK_DIR or ./.vton/stack")
    p.add_argument("--nodes", type=int, default=1,
                   help="up: Ray nodes in all, the head included; each extra one is a worker raylet on this "
                        "machine with its own temp dir and a custom resource vton_node_<i> (default 1)")
    p.add_argument("--node-cpus", type=int, default=2, help="up: logical CPUs of each extra node (default 2)")
    p.set_defaults(handler=_cmd_stack)

    p = sub.add_parser("config", help="resolve and print a run config")
    config_sub = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    show = config_sub.add_parser("show", help="print the resolved config (what gets logged to MLflow)")
    _add_config_args(show)
    show.add_argument("--format", choices=["yaml", "json", "flat"], default="yaml")
    show.set_defaults(handler=_cmd_config)

    p = sub.add_parser("shard", help="dataset -> WebDataset shards on object storage")
    shard_sub = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    synth = shard_sub.add_parser("synth", help="write a synthetic dataset in the VITON-HD layout")
    synth.add_argument("--out", required=True)
    synth.add_argument("--n", type=int, default=64)
    synth.add_argument("--size", default="64x48", help="HEIGHTxWIDTH")
    synth.add_argument("--seed", type=int, default=0)
    build = shard_sub.add_parser("build", help="write tar shards + manifest.json to s3:// or file://")
    build.add_argument("--layout", required=True, help="viton_hd | viton | mpv")
    build.add_argument("--src", required=True)
    build.add_argument("--split", required=True)
    build.add_argument("--dest", required=True, help="s3://bucket/prefix/ or file:///abs/dir")
    build.add_argument("--shard-size", default="256MB")
    build.add_argument("--workers", type=int, default=None)
    build.add_argument("--skip-incomplete", action="store_true",
                       help="skip (and count) samples missing a modality instead of failing")
    verify = shard_sub.add_parser("verify", help="re-read every shard: sha256 + decode every sample")
    verify.add_argument("manifest", help="URL of manifest.json")
    p.set_defaults(handler=_cmd_shard)

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

    p = sub.add_parser("train", help="train a recipe with Ray Train from this process")
    _add_config_args(p)
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=_cmd_train)

    p = sub.add_parser("submit", help="submit a training run as a Ray job (ray job submit)")
    _add_config_args(p)
    p.add_argument("--no-wait", action="store_true")
    p.add_argument("--verbose", action="store_true", help="stream all job logs, not only progress")
    packaging = p.add_mutually_exclusive_group()
    packaging.add_argument("--image", default=None,
                           help="container image holding the project (runtime_env image_uri) instead of "
                                "uploading this checkout as the working dir")
    packaging.add_argument("--requirements", default=None,
                           help="pip requirements file, every line pinned with == (e.g. constraints/cpu.txt), "
                                "installed for the job on top of the nodes' environment")
    p.set_defaults(handler=_cmd_submit)

    p = sub.add_parser("jobs", help="status, logs or stop of a submitted Ray job (Job SDK)")
    p.add_argument("action", choices=["status", "logs", "stop"])
    p.add_argument("job_id", help="the submission id `vton submit` printed (vton-<run name>-<time>)")
    p.add_argument("--address", default=None,
                   help="Ray dashboard URL; default: RAY_ADDRESS (http form) or the local stack's")
    p.add_argument("--follow", action="store_true", help="logs: keep streaming until the job ends")
    p.set_defaults(handler=_cmd_jobs)

    p = sub.add_parser("pipeline", help="train a multi-stage family's stages in order, each a Ray job")
    p.add_argument("directory", help="a folder of stage configs, e.g. configs/viton_hd/")
    p.add_argument("overrides", nargs="*", help="key=value for every stage, or STAGE:key=value for one")
    p.add_argument("--verbose", action="store_true", help="stream all job logs")
    p.set_defaults(handler=_cmd_pipeline)

    p = sub.add_parser("demo", help="end-to-end demo on the local stack (embedded defaults)")
    p.add_argument("overrides", nargs="*", help="dotted overrides of configs/unet_sa/demo.yaml")
    p.add_argument("--verbose", action="store_true", help="stream all job logs")
    p.set_defaults(handler=_cmd_demo)

    p = sub.add_parser("eval", help="evaluate a registered model or a checkpoint on a shard set (on Ray)")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--model", help="models:/NAME@ALIAS or models:/NAME/VERSION")
    source.add_argument("--checkpoint", help="training checkpoint URL: s3://BUCKET/.../RUN/checkpoint_<time>/")
    p.add_argument("--data", required=True, help="URL of a test split's manifest.json")
    p.add_argument("--pairs", choices=["paired", "unpaired"], default="paired")
    p.add_argument("--out", default=None, help="write the results JSON here")
    p.add_argument("--workers", type=int, default=1, help="Ray tasks, one shard split each")
    p.add_argument("--threads", type=int, default=1, help="torch threads per worker")
    p.add_argument("--no-mlflow", action="store_true", help="do not log an MLflow run")
    p.add_argument("--fid-dims", type=int, default=2048, choices=[64, 192, 768, 2048],
                   help="Inception features for FID/KID; only 2048 is the protocol (smaller: smoke tests)")
    p.set_defaults(handler=_cmd_eval)

    p = sub.add_parser("tryon", help="try-on images from a registered model")
    p.add_argument("--model", required=True, help="models:/NAME@ALIAS or models:/NAME/VERSION")
    p.add_argument("--person", required=True, help="person image, or a folder in the VITON-HD layout")
    p.add_argument("--cloth", required=True, help="in-shop cloth image")
    p.add_argument("--cloth-mask", default=None, help="cloth mask (default: ../cloth-mask/<cloth name>)")
    p.add_argument("--pose", default=None, help="OpenPose JSON for a single --person image")
    p.add_argument("--parse", default=None, help="LIP label PNG for a single --person image")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--batch-size", type=int, default=8)
    p.set_defaults(handler=_cmd_tryon)

    p = sub.add_parser("import", help="import released checkpoints (viton-hd) onto our networks")
    import_sub = p.add_subparsers(dest="source", required=True)
    vhd = import_sub.add_parser("viton-hd", help="seg_final.pth / gmm_final.pth / alias_final.pth")
    vhd.add_argument("--seg", help="official SegGenerator state dict")
    vhd.add_argument("--gmm", help="official GMM state dict")
    vhd.add_argument("--alias", help="official ALIASGenerator state dict")
    vhd.add_argument("--register", action="store_true", help="register as vton-viton_hd-<stage>@champion")
    vhd.add_argument("--name-prefix", default="vton-viton_hd", help="registered names: <prefix>-<stage>")
    p.set_defaults(handler=_cmd_import)

    p = sub.add_parser("promote", help="gate a model version into @champion (or --rollback)")
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
    p.add_argument("--pairs", choices=["paired", "unpaired"], default="paired")
    p.add_argument("--workers", type=int, default=1, help="Ray tasks per evaluation")
    p.add_argument("--fid-dims", type=int, default=2048, choices=[64, 192, 768, 2048],
                   help="Inception features for FID/KID; only 2048 is the protocol (smaller: smoke tests)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=_cmd_promote)

    p = sub.add_parser("tune", help="Ray Tune sweeps of loss weights and learning rates (one TorchTrainer per trial)")
    _add_config_args(p)
    p.add_argument("--space", required=True, help="YAML: config key -> distribution, e.g. "
                   "'train.lr_d: loguniform(1e-5, 1e-3)' (uniform, loguniform, randint, choice, grid)")
    p.add_argument("--scheduler", choices=["asha", "pbt"], default="asha")
    p.add_argument("--search", choices=["random", "optuna"], default="random")
    p.add_argument("--trials", type=int, default=4, help="trials to sample (x grid size with grid(...))")
    p.add_argument("--max-concurrent", type=int, default=2)
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
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from orchestrator.config import ConfigError

    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:
        # `vton tune CONFIG --space S.yaml train.steps=8`: argparse binds the positional overrides
        # before the options, so key=value words after them arrive here; anything else is an error.
        if hasattr(args, "overrides") and all("=" in e and not e.startswith("-") for e in extra):
            args.overrides = [*args.overrides, *extra]
        else:
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
    try:
        return args.handler(args)
    except (UserError, ConfigError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # noqa: BLE001 - known user-facing failures from the stack
        from cluster.services import MissingBinaryError
        from cluster.stack import StackError
        from shards.manifest import ManifestError

        if isinstance(exc, (StackError, MissingBinaryError, ManifestError)):
            print(f"error: {exc}", file=sys.stderr)
            return EXIT_USAGE
        raise


if __name__ == "__main__":
    sys.exit(main())
