"""`vton submit` packaging and `vton jobs status|logs|stop`: keys travel by reference only, images
and pinned requirements are valid runtime_envs, and the Job SDK calls work against the local head."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from orchestrator import credentials
from orchestrator.jobs import submit as jobs
from orchestrator.config import load_config

REPO = Path(__file__).resolve().parents[1]
VTON = str(Path(sys.executable).parent / "vton")
KEYS = {"AWS_ACCESS_KEY_ID": "vtontestaccess0001", "AWS_SECRET_ACCESS_KEY": "s3cr3t-value-never-shipped-0001"}


@pytest.fixture
def key_env(monkeypatch, tmp_path) -> Path:
    """Keys in this process's environment and in a 0600 file that the reference names."""
    ref = tmp_path / "keys.env"
    ref.write_text("".join(f"{k}={v}\n" for k, v in KEYS.items()))
    ref.chmod(0o600)
    for key, value in KEYS.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv(credentials.CREDENTIALS_FILE_ENV, str(ref))
    monkeypatch.setenv("VTON_S3_ENDPOINT", "http://127.0.0.1:8333")
    return ref


def test_runtime_env_carries_only_what_the_env_file_names_and_never_keys(key_env, monkeypatch, tmp_path):
    """Nothing of this shell's environment reaches the job on its own (a workstation's TORCH_HOME or
    MLFLOW_TRACKING_URI would override the nodes'); an --env-file's variables do; keys never."""
    monkeypatch.setenv("TORCH_HOME", "/home/me/.cache/torch")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://laptop:5000")
    cfg = load_config(REPO / "configs" / "unet_sa" / "demo.yaml")
    env = jobs.runtime_env(cfg)
    text = json.dumps(env)
    assert not any(value in text for value in KEYS.values())
    assert set(env["env_vars"]) == {jobs.CONFIG_ENV, "VTON_GIT_COMMIT", "PYTHONUNBUFFERED"}
    assert env["working_dir"] == str(REPO) and ".venv" in env["excludes"]

    env_file = tmp_path / "cluster.env"
    env_file.write_text(f"# endpoints\nMLFLOW_TRACKING_URI=https://mlflow.example.com\nVTON_BUCKET=my-bucket\n"
                        f"{credentials.CREDENTIALS_FILE_ENV}=/home/ray/.vton-credentials\n")
    forwarded = jobs.runtime_env(cfg, forward=jobs.read_forwarded(env_file))["env_vars"]
    assert forwarded["MLFLOW_TRACKING_URI"] == "https://mlflow.example.com" and forwarded["VTON_BUCKET"] == "my-bucket"
    assert forwarded[credentials.CREDENTIALS_FILE_ENV] == "/home/ray/.vton-credentials"
    assert "TORCH_HOME" not in forwarded
    with pytest.raises(ValueError, match=r"--env-file .*holds AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY; keys never travel"):
        jobs.read_forwarded(key_env)
    with pytest.raises(ValueError, match=r"--env-file .*: no such file"):
        jobs.read_forwarded(tmp_path / "missing.env")


def test_trainer_workers_get_the_reference_not_the_keys(key_env):
    from orchestrator.jobs.launch import FORWARDED_ENV

    assert credentials.CREDENTIALS_FILE_ENV in FORWARDED_ENV
    assert not credentials.SECRET_KEYS & set(FORWARDED_ENV)


def test_credentials_load_from_the_reference_and_never_override_the_node(key_env, monkeypatch):
    for key in KEYS:
        monkeypatch.delenv(key)
    assert credentials.load() == sorted(KEYS)
    assert all(os.environ[k] == v for k, v in KEYS.items())
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "from-the-pod")  # a node's own keys win
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    assert credentials.load() == ["AWS_ACCESS_KEY_ID"] and os.environ["AWS_SECRET_ACCESS_KEY"] == "from-the-pod"
    monkeypatch.setenv(credentials.CREDENTIALS_FILE_ENV, str(key_env.parent / "not-on-this-node"))
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    assert credentials.load() == []


def test_an_image_replaces_the_uploaded_working_dir(key_env):
    from ray.runtime_env import RuntimeEnv

    env = jobs.runtime_env(load_config(None), image="registry.example.com/vton-train:0.1.0")
    assert set(env) == {"image_uri", "env_vars"}
    RuntimeEnv(**env)  # Ray accepts only env_vars beside image_uri; this raises otherwise
    with pytest.raises(ValueError, match="exclude each other"):
        jobs.runtime_env(load_config(None), image="x", requirements=REPO / "constraints" / "cpu.txt")


def test_requirements_must_be_pinned(tmp_path):
    pinned = jobs.runtime_env(load_config(None), requirements=REPO / "constraints" / "cpu.txt")["pip"]["packages"]
    assert "ray==2.60.0" in pinned and all("==" in line for line in pinned)
    loose = tmp_path / "loose.txt"
    loose.write_text("torch==2.13.0\nnumpy>=1.26  # not pinned\n")
    with pytest.raises(ValueError, match="not pinned: numpy>=1.26"):
        jobs.pinned_requirements(loose)
    # Refused before any connection: the address is never contacted.
    out = subprocess.run([VTON, "submit", str(REPO / "configs" / "unet_sa" / "demo.yaml"), "--requirements",
                          str(loose)], capture_output=True, text=True, timeout=120, cwd=REPO,
                         env={**os.environ, "RAY_ADDRESS": "http://127.0.0.1:9"})
    assert out.returncode == 2 and "not pinned: numpy>=1.26" in out.stderr, out.stdout + out.stderr


def test_jobs_status_logs_stop_through_the_cli(stack):
    from ray.job_submission import JobSubmissionClient

    marker = f"vton-jobs-test-{uuid.uuid4().hex[:6]}"
    client = JobSubmissionClient(stack.ray_job_address)
    job_id = client.submit_job(entrypoint=f"python -c \"print('{marker}', flush=True); import time; time.sleep(300)\"",
                               submission_id=marker)
    try:
        deadline = time.monotonic() + 90
        while marker not in client.get_job_logs(job_id):
            assert time.monotonic() < deadline, client.get_job_info(job_id)
            time.sleep(0.5)
        status = subprocess.run([VTON, "jobs", "status", job_id], capture_output=True, text=True, timeout=60)
        assert status.returncode == 0 and f"job {job_id}: RUNNING" in status.stdout, status.stdout + status.stderr
        logs = subprocess.run([VTON, "jobs", "logs", job_id], capture_output=True, text=True, timeout=60)
        assert logs.returncode == 0 and marker in logs.stdout
        stop = subprocess.run([VTON, "jobs", "stop", job_id], capture_output=True, text=True, timeout=120)
        assert stop.returncode == 0 and f"job {job_id}: STOPPED" in stop.stdout, stop.stdout + stop.stderr
        assert str(client.get_job_status(job_id)).endswith("STOPPED")
    finally:
        client.stop_job(job_id)
    missing = subprocess.run([VTON, "jobs", "status", "vton-no-such-job"], capture_output=True, text=True, timeout=60)
    assert missing.returncode == 2 and "no job 'vton-no-such-job'" in missing.stderr, missing.stdout + missing.stderr
