"""Submitting training runs as Ray jobs (`ray job submit` semantics through the Job SDK).

The job's runtime_env carries the project as its working dir (or names an image holding it), the
resolved config, and the endpoints of object storage and MLflow as environment variables. The S3
keys never enter it: the head stores a runtime_env, shows it in `ray job list` and the dashboard,
and logs it; the job finds the keys by reference instead (orchestrator/credentials.py).
`vton jobs status|logs|stop ID` are the Job SDK calls for a job already submitted.
"""

from __future__ import annotations

import json
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from orchestrator.config import Config
from orchestrator import credentials
from orchestrator.credentials import without_secrets
from orchestrator.jobs.entrypoint import CONFIG_ENV, RESULT_PREFIX
from orchestrator.provenance import GIT_COMMIT_ENV, PROJECT_ROOT, git_commit

#: Never uploaded with the job: environments, local state, VCS data, build outputs.
WORKING_DIR_EXCLUDES = [".venv", ".vton", ".git", "build", "*.egg-info", "__pycache__", ".pytest_cache",
                        "bench/results", ".whl", ".gl"]
PROGRESS_MARK = "[vton]"


class JobFailed(RuntimeError):
    pass


@dataclass
class JobOutcome:
    job_id: str
    status: str
    result: dict | None
    logs: str


class NoClusterError(RuntimeError):
    """No Ray cluster is named or running: a user-facing condition, not a crash."""


def job_address(cfg: Config | None = None) -> str:
    """Where to submit: ray.address, else RAY_ADDRESS (http form), else the local stack's dashboard."""
    from cluster.settings import apply_stack_env

    if cfg is not None and cfg.ray.address:
        return cfg.ray.address
    if os.environ.get("RAY_ADDRESS", "").startswith("http"):
        return os.environ["RAY_ADDRESS"]
    apply_stack_env()
    if os.environ.get("VTON_RAY_JOB_ADDRESS"):
        return os.environ["VTON_RAY_JOB_ADDRESS"]
    raise NoClusterError("no Ray cluster to submit to: set ray.address or RAY_ADDRESS=http://HEAD:8265, "
                       "or start the local stack with `vton stack up`")


def runtime_env(cfg: Config, image: str | None = None, requirements: str | Path | None = None,
                forward: dict[str, str] | None = None) -> dict:
    """The job's runtime_env: the resolved config, the variables the user forwards (``forward``: an
    ``--env-file``'s), the S3 keys never (only a key file's path: the head stores and shows
    everything placed here, see credentials.py), and either the project as working dir (optionally
    with pinned pip requirements) or a container image holding it.

    Nothing else from this machine's environment goes along: the nodes' own environment (a real
    cluster's cluster.env or configmap; the local stack starts its nodes with its endpoints) is what
    jobs see, and a workstation's ``TORCH_HOME`` or ``MLFLOW_TRACKING_URI`` would silently override it.
    """
    env = without_secrets(dict(forward or {}))
    env[CONFIG_ENV] = json.dumps(cfg.to_dict())
    env[GIT_COMMIT_ENV] = git_commit()  # the job runs from a copy without .git
    env["PYTHONUNBUFFERED"] = "1"
    if image:
        if requirements:
            raise ValueError("--image and --requirements exclude each other: Ray runs an image_uri job with the "
                             "image's own Python environment (bake the pinned requirements into the image)")
        # Ray accepts only env_vars (and config) beside image_uri: the image must contain the project.
        return {"image_uri": image, "env_vars": env}
    out: dict = {"working_dir": str(PROJECT_ROOT), "excludes": WORKING_DIR_EXCLUDES, "env_vars": env}
    if requirements:
        out["pip"] = {"packages": pinned_requirements(Path(requirements)), "pip_check": False}
    return out


def read_forwarded(env_file: str | Path) -> dict[str, str]:
    """The variables of an ``--env-file`` (KEY=VALUE lines); keys in it are refused, not forwarded."""
    from cluster.settings import read_env_file

    path = Path(env_file).expanduser()
    if not path.is_file():
        raise ValueError(f"--env-file {env_file}: no such file")
    values = read_env_file(path)
    secrets = sorted(credentials.SECRET_KEYS & set(values))
    if secrets:
        raise ValueError(f"--env-file {env_file}: holds {', '.join(secrets)}; keys never travel with a job (the head "
                         f"stores and shows its environment). Put them in a file the nodes can read and name it "
                         f"with {credentials.CREDENTIALS_FILE_ENV}, or give the nodes an instance role")
    return values


def pinned_requirements(path: Path) -> list[str]:
    """Requirement lines of ``path``, each pinned with ``==`` (a job must not resolve versions anew)."""
    if not path.is_file():
        raise ValueError(f"--requirements {path}: no such file")
    lines = [line.split("#", 1)[0].strip() for line in path.read_text().splitlines()]
    lines = [line for line in lines if line]
    loose = [line for line in lines if "==" not in line or line.startswith("-")]
    if loose:
        raise ValueError(f"--requirements {path}: every line must pin one version with '==' "
                         f"(e.g. constraints/cpu.txt); not pinned: {', '.join(loose[:5])}")
    return lines


def submit(cfg: Config, address: str | None = None, image: str | None = None,
           requirements: str | Path | None = None, env_file: str | Path | None = None,
           entrypoint: str = "python -m orchestrator.jobs.entrypoint", kind: str = "run") -> tuple[object, str]:
    """Submit ``cfg`` as a Ray job (the trainer, or another ``entrypoint`` reading the same resolved
    config, such as the doctor); ``env_file``'s variables (KEY=VALUE lines) go with it."""
    from ray.job_submission import JobSubmissionClient

    target = address or job_address(cfg)  # for the local stack this also exports its endpoints
    forward = read_forwarded(env_file) if env_file else {}
    env = runtime_env(cfg, image=image, requirements=requirements, forward=forward)  # errors before connecting
    client = JobSubmissionClient(target)
    prefix = f"vton-{cfg.name}" if kind == "run" else f"vton-{kind}"
    job_id = client.submit_job(entrypoint=entrypoint, runtime_env=env,
                               submission_id=f"{prefix}-{int(time.time())}",
                               metadata={"vton.run_name": cfg.name, "vton.recipe": cfg.model.recipe})
    return client, job_id


# ------------------------------------------------------------------------------ `vton jobs`


@dataclass
class JobSummary:
    """What `vton jobs status` shows: never the runtime_env (it holds the resolved config)."""

    job_id: str
    status: str
    message: str
    entrypoint: str
    run_name: str | None
    started: float | None  # seconds since the epoch
    ended: float | None
    mlflow_run_id: str | None  # from the job's result line, once it has succeeded


def client_for(address: str | None = None):
    from ray.job_submission import JobSubmissionClient

    return JobSubmissionClient(address or job_address())


def _status_text(status) -> str:
    return str(status.value if hasattr(status, "value") else status)


def status(job_id: str, address: str | None = None) -> JobSummary:
    client = client_for(address)
    info = client.get_job_info(job_id)
    state = _status_text(info.status)
    result = result_of(client.get_job_logs(job_id)) if state == "SUCCEEDED" else None
    return JobSummary(
        job_id=job_id, status=state, message=info.message or "", entrypoint=info.entrypoint,
        run_name=(info.metadata or {}).get("vton.run_name"),
        started=info.start_time / 1000 if info.start_time else None,
        ended=info.end_time / 1000 if info.end_time else None,
        mlflow_run_id=(result or {}).get("mlflow_run_id"),
    )


def end_orphaned_run(job_id: str, address: str | None = None) -> str | None:
    """The MLflow run of an ended job that is still RUNNING (its driver was SIGKILLed before it
    could mark it) marked KILLED (stopped job) or FAILED; returns the run id. Nothing while another
    job of the same run name is pending or running: that one owns the run now."""
    from ray.job_submission import JobStatus

    from orchestrator.config import config_from_dict
    from orchestrator.registry.tracking import end_unfinished_run

    client = client_for(address)
    info = client.get_job_info(job_id)
    resolved = ((info.runtime_env or {}).get("env_vars") or {}).get(CONFIG_ENV)
    if info.status not in (JobStatus.FAILED, JobStatus.STOPPED) or not resolved:
        return None
    name = (info.metadata or {}).get("vton.run_name")
    if any((j.metadata or {}).get("vton.run_name") == name and j.status in (JobStatus.PENDING, JobStatus.RUNNING)
           for j in client.list_jobs()):
        return None
    return end_unfinished_run(config_from_dict(json.loads(resolved)),
                              "KILLED" if info.status == JobStatus.STOPPED else "FAILED")


def logs(job_id: str, address: str | None = None) -> str:
    return client_for(address).get_job_logs(job_id)


def follow(job_id: str, on_line: Callable[[str], None] = print, address: str | None = None) -> JobOutcome:
    """Print the job's logs as they come until it ends (`vton jobs logs --follow`)."""
    return wait(client_for(address), job_id, on_line)


def stop(job_id: str, address: str | None = None, timeout_s: float = 60.0) -> str:
    """Ask the job to stop, then wait until Ray reports it ended; returns its final status."""
    from ray.job_submission import JobStatus

    client = client_for(address)
    client.stop_job(job_id)
    deadline = time.monotonic() + timeout_s
    while True:
        state = client.get_job_status(job_id)
        if state in (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.STOPPED) or time.monotonic() > deadline:
            return _status_text(state)
        time.sleep(0.5)


def result_of(log_text: str) -> dict | None:
    """The entrypoint's last ``VTON_RESULT {json}`` line, if the logs hold one."""
    for line in reversed(log_text.splitlines()):
        if line.startswith(RESULT_PREFIX):
            return json.loads(line[len(RESULT_PREFIX):])
    return None


def wait(client, job_id: str, on_line: Callable[[str], None] = print, poll_s: float = 1.0,
         timeout_s: float | None = None) -> JobOutcome:
    """Follow the job's logs (calling ``on_line`` for each new line) until it ends."""
    from ray.job_submission import JobStatus

    seen = 0
    started = time.monotonic()
    while True:
        status = client.get_job_status(job_id)
        logs = client.get_job_logs(job_id)
        lines = logs.splitlines()
        for line in lines[seen:]:
            on_line(line)
        seen = len(lines)
        if status in (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.STOPPED):
            break
        if timeout_s is not None and time.monotonic() - started > timeout_s:
            client.stop_job(job_id)
            raise JobFailed(f"job {job_id} did not finish within {timeout_s:.0f}s and was stopped")
        time.sleep(poll_s)
    return JobOutcome(job_id=job_id, status=_status_text(status), result=result_of(logs), logs=logs)


_RAY_PREFIX = re.compile(r"^(?:\x1b\[[0-9;]*m)?\([^)]*pid=\d+[^)]*\)(?:\x1b\[[0-9;]*m)?\s*")


def progress_printer(verbose: bool) -> Callable[[str], None]:
    """The loop's own progress lines (without Ray's worker prefix, each once) unless verbose."""
    last = [""]

    def show(line: str) -> None:
        if verbose:
            print(line, flush=True)
            return
        text = _RAY_PREFIX.sub("", line)
        if text.startswith(PROGRESS_MARK) and text != last[0]:
            print(f"    {text[len(PROGRESS_MARK):].strip()}", flush=True)
            last[0] = text
        elif text.startswith("error:"):
            print(text, flush=True)
    return show
