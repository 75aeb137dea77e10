"""What a Ray job runs: ``ray job submit -- python -m orchestrator.jobs.entrypoint CONFIG [overrides]``.

`vton submit` passes the already-resolved config in ``VTON_RESOLVED_CONFIG`` (so a config file
outside the uploaded working dir still works); by hand, pass a config path and overrides. The last
line printed is ``VTON_RESULT {json}``, which `vton submit` and `vton demo` parse; a known failure
(``orchestrator.failures``: bad data, unreachable storage, a bad config key, ...) ends the job with
one ``error:`` line, a ``VTON_FAILURE {json}`` line for `vton submit`, and its kind's exit status.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading

from orchestrator import credentials
from orchestrator.config import Config, config_from_dict, load_config
from orchestrator.failures import FAILURE_PREFIX, classify

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


class _Stopped(BaseException):
    """SIGTERM: `ray job stop` (or `vton jobs stop`) ends the driver."""


def _stop_on_sigterm(signum, frame) -> None:
    raise _Stopped()


def _fit_ending_the_run(cfg: Config, fit):
    """``fit(cfg)``; when it ends without finishing the run (a failure, a stop), the MLflow run is
    marked FAILED or KILLED here: the worker that would have ended it may be gone.

    ``fit`` runs in a thread: Ray Train's driver waits in one blocking ``ray.get``, during which
    Python never runs a SIGTERM handler, and `ray job stop` SIGKILLs 3 s after its SIGTERM. The
    main thread only waits, so the handler runs at once."""
    from orchestrator.registry.tracking import end_unfinished_run

    if cfg.tracking.enabled:
        import mlflow  # noqa: F401 - now, not after a stop: `ray job stop` leaves 3 s to mark the run

    done: dict = {}

    def run() -> None:
        try:
            done["outcome"] = fit(cfg)
        except BaseException as exc:  # noqa: BLE001 - handed to the main thread
            done["error"] = exc

    previous = signal.signal(signal.SIGTERM, _stop_on_sigterm)
    worker = threading.Thread(target=run, name="vton-fit", daemon=True)
    try:
        worker.start()
        while worker.is_alive():
            worker.join(0.5)
    except _Stopped:
        _end_run(cfg, "KILLED", end_unfinished_run)
        # Not SystemExit: Ray's exit hooks wait for the training the driver owns, which would go
        # on logging into the run just ended. Ending the driver ends its job's actors, as the
        # SIGKILL `ray job stop` sends 3 s later would.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(143)
    finally:
        signal.signal(signal.SIGTERM, previous)
    if "error" in done:
        _end_run(cfg, "FAILED", end_unfinished_run)
        raise done["error"]
    return done["outcome"]


def _end_run(cfg: Config, status: str, end_unfinished_run) -> None:
    try:
        run_id = end_unfinished_run(cfg, status)
    except Exception as exc:  # noqa: BLE001 - the tracking server may be what failed; say so and go on
        print(f"[vton] could not mark the MLflow run {status}: {exc}", file=sys.stderr, flush=True)
        return
    if run_id:
        print(f"[vton] MLflow run {run_id} marked {status}", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    from orchestrator.jobs.launch import QUIET_JOB_ENV

    for key, value in QUIET_JOB_ENV.items():
        os.environ.setdefault(key, value)
    try:
        cfg = resolve(sys.argv[1:] if argv is None else argv)
        credentials.load()  # the keys arrive by reference (VTON_CREDENTIALS_FILE) or with the node
        import ray

        from orchestrator.jobs.capacity import Capacity
        from orchestrator.jobs.launch import fit
        from orchestrator.jobs.preflight import preflight

        ray.init(address=os.environ.get("RAY_ADDRESS", "auto"), log_to_driver=True)
        preflight(cfg, Capacity.of_ray_cluster())
        outcome = _fit_ending_the_run(cfg, fit)
    except Exception as exc:  # noqa: BLE001 - a known failure is one line and its kind's exit status
        failure = classify(exc)
        if failure is None:
            raise
        print(failure.line(), file=sys.stderr, flush=True)
        print(FAILURE_PREFIX + failure.to_json(), flush=True)  # read back by `vton submit`
        return failure.exit_code
    print(RESULT_PREFIX + outcome.to_json(), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
