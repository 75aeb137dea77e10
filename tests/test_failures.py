"""Known failures end every user-facing command and job with one line and their kind's exit status
(orchestrator.failures): bad source images at build time, an unreachable S3 endpoint, a Ray worker's
error, a job whose data is missing."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from orchestrator.failures import EXIT_DATA, EXIT_STORAGE, Failure, classify

REPO = Path(__file__).resolve().parents[1]
VTON = str(Path(sys.executable).parent / "vton")


def vton(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([VTON, *args], capture_output=True, text=True, timeout=120, cwd=REPO,
                          env={**os.environ, **(env or {})})


def one_error_line(out: subprocess.CompletedProcess) -> str:
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    assert "Traceback" not in out.stderr and len(lines) == 1 and lines[0].startswith("error: "), out.stderr
    return lines[0]


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Path:
    from shards.synthetic import synthesize_layout

    root = tmp_path_factory.mktemp("failures") / "data"
    synthesize_layout("viton_hd", root, n=6, size=(64, 48), seed=1)
    return root


def test_unreadable_source_images_fail_the_build_naming_sample_member_and_line(source, tmp_path):
    """A text file under a .jpg name, and a parse map that is a symlink to a text file inside the
    dataset, used to be sharded silently (training then skipped them) or end in PIL's traceback."""
    data = tmp_path / "data"
    shutil.copytree(source, data)
    (data / "notes.txt").write_text("not an image\n")
    first = sorted((data / "train" / "image").iterdir())[0].stem
    (data / "train" / "image" / f"{first}.jpg").write_text("garbage")
    parse = sorted((data / "train" / "image-parse-v3").iterdir())[1]
    parse.unlink()
    parse.symlink_to(data / "notes.txt")

    out = vton("shard", "build", "--layout", "viton_hd", "--src", str(data), "--split", "train",
               "--dest", f"file://{tmp_path}/shards")
    line = one_error_line(out)
    assert out.returncode == EXIT_DATA, out.stderr
    assert f"train_pairs.txt:1: sample '{first}': person.jpg at" in line and "is not a readable image" in line
    assert not (tmp_path / "shards" / "manifest.json").exists()

    out = vton("shard", "build", "--layout", "viton_hd", "--src", str(data), "--split", "train",
               "--dest", f"file://{tmp_path}/shards", "--skip-bad")
    assert out.returncode == 0, out.stderr
    assert "2 bad source sample(s) skipped" in out.stdout
    assert "parse.png at" in out.stderr and "train_pairs.txt:2" in out.stderr


def test_verify_against_an_unreachable_endpoint_is_one_line_and_the_storage_status(tmp_path):
    """It retried for ~14 s, then printed a urllib3 traceback."""
    import socket

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    endpoint = f"http://127.0.0.1:{port}"
    out = vton("shard", "verify", "s3://vton/anything/manifest.json",
               env={"VTON_S3_ENDPOINT": endpoint, "AWS_ENDPOINT_URL_S3": endpoint, "AWS_ACCESS_KEY_ID": "a",
                    "AWS_SECRET_ACCESS_KEY": "b", "VTON_STACK_DIR": str(tmp_path / "no-stack")})
    line = one_error_line(out)
    assert out.returncode == EXIT_STORAGE
    assert f"cannot reach the S3 endpoint {endpoint}" in line and "s3://vton/anything/manifest.json" in line


def test_a_ray_workers_known_failure_is_classified_by_rank():
    """What Ray Train raises for a worker's StoreError: a WorkerGroupError holding the remote error
    per rank (a RayTaskError that is also a StoreError, whose text is the remote traceback)."""
    from ray.exceptions import RayTaskError
    from ray.train.v2.api.exceptions import WorkerGroupError

    from shards.store import StoreError

    cause = StoreError("s3://b/train-000000.tar: cannot reach the S3 endpoint http://10.0.0.9:8333")
    remote = RayTaskError("train_fn", "Traceback (most recent call last):\n  ...", cause).as_instanceof_cause()
    failure = classify(WorkerGroupError("Training failed", {1: remote}))
    assert failure == Failure(EXIT_STORAGE, "storage", f"rank 1: {cause}")
    assert classify(RuntimeError("a bug")) is None  # keeps its traceback


def test_a_job_whose_data_is_missing_ends_with_one_line_and_the_data_status(stack):
    """`vton submit` refuses a missing manifest before any job exists, so this job is submitted
    as `ray job submit` users do. The entrypoint caught only ConfigError: a missing manifest was a
    15-line traceback in the job log, and `vton submit` could not tell its kind."""
    from orchestrator.config import load_config
    from orchestrator.jobs import submit as jobs

    manifest = f"s3://{stack.bucket}/tests/{uuid.uuid4().hex[:8]}/nowhere/manifest.json"
    cfg = load_config(REPO / "configs" / "unet_sa" / "demo.yaml",
                      [f"data.manifest={manifest}", "data.val_manifest=", f"name=missing-{uuid.uuid4().hex[:6]}"])
    client, job_id = jobs.submit(cfg)
    outcome = jobs.wait(client, job_id, on_line=lambda _line: None, timeout_s=300)
    assert outcome.status == "FAILED", outcome.logs
    failure = Failure.from_log(outcome.logs)
    assert failure is not None and failure.exit_code == EXIT_DATA and manifest in failure.message, outcome.logs
    assert "Traceback" not in outcome.logs and failure.line() in outcome.logs


def test_an_upload_to_aws_nobody_asked_for_is_refused(source, tmp_path):
    """From a directory without the stack and with no endpoint set, `shard build` used to upload to
    real AWS with whatever credentials were around; now it says so and asks where, before any upload."""
    env = {k: v for k, v in os.environ.items() if k not in {"VTON_S3_ENDPOINT", "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"}}
    env.update(VTON_STACK_DIR=str(tmp_path / "no-stack"), AWS_ACCESS_KEY_ID="someone-elses", AWS_SECRET_ACCESS_KEY="x")
    argv = [VTON, "shard", "build", "--layout", "viton_hd", "--src", str(source), "--split", "train",
            "--dest", "s3://my-bucket/shards/"]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=120, cwd=tmp_path, env=env)
    line = one_error_line(out)
    assert out.returncode == 2 and "no S3 endpoint is set and no local stack was found" in line
    assert "VTON_S3_ENDPOINT=aws" in line
    # Said on purpose, it goes ahead (and fails here only because AWS is out of reach).
    out = subprocess.run(argv, capture_output=True, text=True, timeout=120, cwd=tmp_path,
                         env={**env, "VTON_S3_ENDPOINT": "aws", "AWS_EC2_METADATA_DISABLED": "true"})
    assert "[vton] writing to AWS S3 (VTON_S3_ENDPOINT=aws)" in out.stderr, out.stderr

