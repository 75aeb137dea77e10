"""`vton train|submit|jobs|pipeline|demo`: training runs, in-process or as Ray jobs."""

from __future__ import annotations

import argparse
import sys

from orchestrator.cli.common import UserError, add_config_args, add_env_file_arg, apply_env_file
from orchestrator.failures import EXIT_FAILED, Failure


def _cmd_train(args: argparse.Namespace) -> int:
    """Train with this process as the driver: on ray.address, RAY_ADDRESS or the local stack's Ray
    (whichever is set or up, in that order), else on a private Ray instance; workers as configured."""
    from cluster.settings import apply_stack_env
    from orchestrator.config import load_config

    cfg = load_config(args.config, args.overrides)
    apply_stack_env()
    from orchestrator.jobs.capacity import Capacity
    from orchestrator.jobs.connection import cluster_address, connect
    from orchestrator.jobs.launch import fit
    from orchestrator.jobs.preflight import preflight

    target = cluster_address(cfg)
    on_cluster = bool(target[0])
    if not on_cluster:
        preflight(cfg, Capacity.this_machine())  # before starting a private Ray for nothing
    connect(cfg, target=target)
    if on_cluster:
        preflight(cfg, Capacity.of_ray_cluster())  # judged against the cluster it will run on
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
    from orchestrator.jobs import submit as jobs
    from orchestrator.config import load_config

    apply_env_file(args.env_file)
    cfg = load_config(args.config, args.overrides)  # validated before anything reaches the cluster
    try:
        jobs.runtime_env(cfg, image=args.image, requirements=args.requirements)  # --image / --requirements first
    except ValueError as exc:
        raise UserError(str(exc)) from None
    preflight_here(cfg)
    try:
        client, job_id = jobs.submit(cfg, image=args.image, requirements=args.requirements, env_file=args.env_file)
    except (ValueError, ConnectionError, jobs.NoClusterError) as exc:  # --image/--requirements, no or no reachable head
        raise UserError(str(exc)) from None
    print(f"submitted job {job_id}")
    if args.no_wait:
        return 0
    outcome = jobs.wait(client, job_id, jobs.progress_printer(args.verbose))
    if outcome.status != "SUCCEEDED" or outcome.result is None:
        failure = Failure.from_log(outcome.logs)
        if failure is not None:  # its `error:` line was shown above as the job printed it
            print(f"job {job_id} ended {outcome.status} ({failure.kind}); full log: vton jobs logs {job_id}",
                  file=sys.stderr)
            return failure.exit_code
        print("\n".join(outcome.logs.splitlines()[-40:]), file=sys.stderr)
        print(f"error: job {job_id} ended {outcome.status}", file=sys.stderr)
        return EXIT_FAILED
    print(_describe_outcome(outcome.result))
    return 0


def preflight_here(cfg) -> None:
    """Every check that can run on this machine before a job exists: the recipe and its options,
    consumed stages, the data (manifest readable, one sample fits the recipe). What only the cluster
    knows (GPUs, pretrained files there) its entrypoint checks again. A store or manifest problem is
    one line naming the URL, not a traceback."""
    from cluster.settings import apply_stack_env
    from orchestrator.jobs.preflight import preflight
    from shards.manifest import ManifestError
    from shards.store import StoreError, check_reachable

    apply_stack_env(urls=[cfg.data.manifest, cfg.data.val_manifest or ""])
    import vton_models  # noqa: F401  - torchvision's CPU shim before the representation probe

    try:
        for url in (cfg.data.manifest, cfg.data.val_manifest):
            if url:
                check_reachable(url)
        preflight(cfg, None)
    except (StoreError, ManifestError) as exc:  # the same kind (exit status), naming the key
        raise type(exc)(f"data.manifest: {exc}") from None


def _cmd_pipeline(args: argparse.Namespace) -> int:
    """Thin: orchestrator.jobs.pipeline orders, checks and submits the stages; a failed stage stops it."""
    from cluster.settings import apply_stack_env

    apply_env_file(args.env_file)
    apply_stack_env()
    import vton_models  # noqa: F401
    from orchestrator.jobs import submit as jobs
    from orchestrator.jobs.pipeline import (check_stages, load_stages, ray_job_runner, register_pipeline_chain,
                                            run_pipeline)

    stages = load_stages(args.directory, args.overrides)
    check_stages(stages)  # GPUs are the cluster's: each job's entrypoint checks them where it runs
    print("pipeline: " + " -> ".join(f"{s.name} ({s.cfg.model.recipe})" for s in stages))
    try:
        results = run_pipeline(stages, ray_job_runner(jobs.progress_printer(args.verbose), env_file=args.env_file))
    except RuntimeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for r in results:
        print(f"{r.stage:8s} job {r.job_id}  MLflow run {r.mlflow_run_id}  model {r.model_uri}")
    register_pipeline_chain(stages, results, name=args.chain_name)
    return 0


def _cmd_jobs(args: argparse.Namespace) -> int:
    """Thin: the Job SDK calls live in orchestrator.jobs; an unknown ID is a user error."""
    import time

    from orchestrator.jobs import submit as jobs

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
            _report_orphaned_run(jobs, args)
            return 0
        if args.action == "logs":
            if args.follow:
                outcome = jobs.follow(args.job_id, address=args.address)
                return 0 if outcome.status == "SUCCEEDED" else 1
            print(jobs.logs(args.job_id, args.address), end="")
            return 0
        final = jobs.stop(args.job_id, args.address)
        print(f"job {args.job_id}: {final}")
        _report_orphaned_run(jobs, args)
        return 0 if final in ("STOPPED", "SUCCEEDED", "FAILED") else 1
    except (RuntimeError, ConnectionError) as exc:  # no cluster to ask, or the Job SDK's 404 for an unknown ID
        if "does not exist" in str(exc) or "status code 404" in str(exc):
            raise UserError(f"no job {args.job_id!r} on {args.address or jobs.job_address()}") from None
        raise UserError(str(exc)) from None


def _report_orphaned_run(jobs, args: argparse.Namespace) -> None:
    """A job's driver marks its run FAILED or KILLED when training ends without finishing it; a
    driver that was SIGKILLed could not, so the run still said RUNNING: mark it now."""
    from cluster.settings import apply_stack_env

    apply_stack_env()  # the tracking server of the local stack, when the config names none
    try:
        run_id = jobs.end_orphaned_run(args.job_id, args.address)
    except Exception as exc:  # noqa: BLE001 - the job's status is the answer; the run is a courtesy
        print(f"  (could not check its MLflow run: {exc})", file=sys.stderr)
        return
    if run_id:
        print(f"  MLflow run {run_id} marked ended: the job ended without ending it")


def _cmd_demo(args: argparse.Namespace) -> int:
    from orchestrator.jobs.demo import run_demo

    return run_demo(args.overrides, verbose=args.verbose)


def add_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train a recipe with Ray Train from this process")
    add_config_args(p)
    p.add_argument("--json", action="store_true", help="the run's outcome as one JSON object on stdout")
    p.set_defaults(handler=_cmd_train)

    p = sub.add_parser("submit", help="submit a training run as a Ray job (ray job submit)")
    add_config_args(p)
    p.add_argument("--no-wait", action="store_true",
                   help="return once the job is submitted (follow it with `vton jobs logs ID --follow`)")
    add_env_file_arg(p)
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
    p.add_argument("action", choices=["status", "logs", "stop"],
                   help="status: state, times and MLflow run; logs: the job's output; stop: stop it and wait")
    p.add_argument("job_id", help="the submission id `vton submit` printed (vton-<run name>-<time>)")
    p.add_argument("--address", default=None,
                   help="Ray dashboard URL; default: RAY_ADDRESS (http form) or the local stack's")
    p.add_argument("--follow", action="store_true", help="logs: keep streaming until the job ends")
    p.set_defaults(handler=_cmd_jobs)

    p = sub.add_parser("pipeline", help="train a multi-stage family's stages in order, each a Ray job")
    p.add_argument("directory", help="a folder of stage configs, e.g. configs/viton_hd/")
    p.add_argument("--chain-name", default=None,
                   help="registered name of the family's try-on chain, registered at the end (default vton-<family>)")
    p.add_argument("overrides", nargs="*", help="key=value for every stage, or STAGE:key=value for one")
    add_env_file_arg(p)
    p.add_argument("--verbose", action="store_true", help="stream all job logs")
    p.set_defaults(handler=_cmd_pipeline)

    p = sub.add_parser("demo", help="end-to-end demo on the local stack (embedded defaults)")
    p.add_argument("overrides", nargs="*", help="dotted overrides of configs/unet_sa/demo.yaml")
    p.add_argument("--verbose", action="store_true", help="stream all job logs")
    p.set_defaults(handler=_cmd_demo)
