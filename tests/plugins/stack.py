"""Session fixtures for the real local stack (S3 server, MLflow server, Ray head).

The stack is started once per test session, or reused when one is already running for this
checkout's state dir (then it is left running afterwards). Its endpoints and keys are exported
into ``os.environ`` for the session, exactly as `vton` commands read them from the env file.
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass

import pytest

from cluster import stack as local_stack
from cluster.services import s3_client
from cluster.settings import Credentials, StackSettings


@dataclass(frozen=True)
class StackHandle:
    settings: StackSettings
    env: dict[str, str]

    @property
    def s3_endpoint(self) -> str:
        return self.env["VTON_S3_ENDPOINT"]

    @property
    def bucket(self) -> str:
        return self.env["VTON_BUCKET"]

    @property
    def mlflow_uri(self) -> str:
        return self.env["MLFLOW_TRACKING_URI"]

    @property
    def ray_job_address(self) -> str:
        return self.env["VTON_RAY_JOB_ADDRESS"]

    def s3_client(self):
        return s3_client(self.settings, Credentials.load_or_create(self.settings.state_dir))


@pytest.fixture(scope="session")
def stack():
    settings = StackSettings.from_env()
    already_up = all(s.state == "running" for s in local_stack.status(settings))
    try:
        env = local_stack.up(settings, log=lambda _msg: None)
    except BaseException:
        if not already_up:  # stop what this attempt started before the failing service
            local_stack.down(settings, log=lambda _msg: None)
        raise
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        yield StackHandle(settings, env)
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        if not already_up:
            local_stack.down(settings, log=lambda _msg: None)


@pytest.fixture
def s3_prefix(stack) -> str:
    """A fresh ``s3://bucket/tests/<id>`` prefix on the real S3 server, for one test."""
    return f"s3://{stack.bucket}/tests/{uuid.uuid4().hex[:12]}"


def pipeline_with_one_ray_job(directory, overrides, ray_stage: str) -> tuple[list, str | None, list[str]]:
    """`vton pipeline DIRECTORY OVERRIDES` as the CLI runs it (same ordering, preflight, wiring and
    chain registration), with ``ray_stage`` a real Ray job on the stack and every other stage
    trained and registered in this process: a Ray job costs ~50 s of start-up on 2 cores, and the
    suite runs one per family. Returns the stage results, the chain's URI and every line said."""
    from orchestrator.jobs import submit as jobs
    from orchestrator.jobs.pipeline import (check_stages, load_stages, ray_job_runner, register_pipeline_chain,
                                            run_pipeline)
    from orchestrator.jobs.preflight import preflight
    from orchestrator.train.loop import WorkerContext, train_worker

    said: list[str] = []
    on_ray = ray_job_runner(jobs.progress_printer(False), say=said.append)

    def run(stage) -> tuple[str, dict]:
        if stage.name == ray_stage:
            return on_ray(stage)
        preflight(stage.cfg, where=0)  # what the job's entrypoint checks and pins before its workers
        result = train_worker(stage.cfg, WorkerContext())  # what the Ray job's workers run
        return f"in-process-{stage.name}", {"steps": result.steps_run, "model_version": result.model_version,
                                            "mlflow_run_id": result.mlflow_run_id, "val_after": result.val_after}

    stages = load_stages(directory, overrides)
    check_stages(stages)
    assert ray_stage in {s.name for s in stages}, ray_stage
    results = run_pipeline(stages, run, say=said.append)
    chain = register_pipeline_chain(stages, results, say=said.append)
    return results, chain, said
