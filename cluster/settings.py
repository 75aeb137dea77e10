"""Where the local stack lives and which ports it uses; the env file every `vton` command reads.

All state sits under one directory (default ``.vton/stack`` in the current project) so that two
checkouts can each run their own stack and ``down`` only ever touches what its ``up`` started.
Ports default to the servers' usual ones and can be moved with ``VTON_*_PORT`` variables.
"""

from __future__ import annotations

import logging
import os
import secrets
import stat
from dataclasses import dataclass, field
from pathlib import Path

ENV_FILE_NAME = "stack.env"
DEFAULT_BUCKET = "vton"
MLFLOW_BUCKET = "vton-mlflow"
REGION = "us-east-1"


def _port(name: str, default: int) -> int:
    return _env_int(name, default, "a port number")


def _env_int(name: str, default: int, what: str) -> int:
    raw = os.environ.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"{name}={raw!r} is not {what}") from None
    if value <= 0:
        raise ValueError(f"{name}={raw!r} is not {what}")
    return value


@dataclass(frozen=True)
class StackPorts:
    s3: int = field(default_factory=lambda: _port("VTON_S3_PORT", 8333))
    seaweed_master: int = field(default_factory=lambda: _port("VTON_SEAWEED_MASTER_PORT", 9333))
    seaweed_volume: int = field(default_factory=lambda: _port("VTON_SEAWEED_VOLUME_PORT", 9340))
    seaweed_filer: int = field(default_factory=lambda: _port("VTON_SEAWEED_FILER_PORT", 8888))
    mlflow: int = field(default_factory=lambda: _port("VTON_MLFLOW_PORT", 5000))
    ray_gcs: int = field(default_factory=lambda: _port("VTON_RAY_PORT", 6379))
    ray_dashboard: int = field(default_factory=lambda: _port("VTON_RAY_DASHBOARD_PORT", 8265))
    ray_client: int = field(default_factory=lambda: _port("VTON_RAY_CLIENT_PORT", 10001))


@dataclass(frozen=True)
class StackSettings:
    state_dir: Path
    ports: StackPorts = field(default_factory=StackPorts)
    host: str = "127.0.0.1"
    ray_num_cpus: int = field(default_factory=lambda: os.cpu_count() or 2)
    ray_object_store_bytes: int = 1 << 30
    # SeaweedFS allots volume slots as free disk / volume size, and every bucket (one per test or
    # Ray storage prefix) takes a slot of its own. Its own default of up to 1 GiB per volume left
    # a disk with a few GiB free without slots mid-suite ("InternalError" on every PutObject);
    # small volumes keep that many more slots on the same disk.
    s3_volume_mb: int = field(default_factory=lambda: _env_int("VTON_S3_VOLUME_MB", 64, "a size in MiB > 0"))

    @classmethod
    def from_env(cls, state_dir: str | Path | None = None) -> "StackSettings":
        root = state_dir or os.environ.get("VTON_STACK_DIR") or Path.cwd() / ".vton" / "stack"
        return cls(state_dir=Path(root).resolve())

    @property
    def env_file(self) -> Path:
        return self.state_dir / ENV_FILE_NAME

    def service_dir(self, name: str) -> Path:
        return self.state_dir / name

    @property
    def s3_endpoint(self) -> str:
        return f"http://{self.host}:{self.ports.s3}"

    @property
    def mlflow_uri(self) -> str:
        return f"http://{self.host}:{self.ports.mlflow}"

    @property
    def ray_job_address(self) -> str:
        return f"http://{self.host}:{self.ports.ray_dashboard}"

    @property
    def ray_gcs_address(self) -> str:
        return f"{self.host}:{self.ports.ray_gcs}"


@dataclass(frozen=True)
class Credentials:
    access_key: str
    secret_key: str

    @classmethod
    def load_or_create(cls, state_dir: Path) -> "Credentials":
        """Keys persist across restarts so objects written earlier stay reachable."""
        path = state_dir / "credentials"
        if path.is_file():
            access, secret = path.read_text().split()
            return cls(access, secret)
        state_dir.mkdir(parents=True, exist_ok=True)
        creds = cls("vton" + secrets.token_hex(8), secrets.token_urlsafe(30))
        path.write_text(f"{creds.access_key}\n{creds.secret_key}\n")
        path.chmod(stat.S_IRUSR | stat.S_IWUSR)
        return creds


def stack_environment(settings: StackSettings, creds: Credentials) -> dict[str, str]:
    """What the env file holds: endpoints plus the generated keys (file mode 0600)."""
    return {**node_environment(settings), "AWS_ACCESS_KEY_ID": creds.access_key,
            "AWS_SECRET_ACCESS_KEY": creds.secret_key}


def node_environment(settings: StackSettings) -> dict[str, str]:
    """What every local Ray node starts with, as a real cluster's nodes start with its env file
    (docs/deploy.md, cluster.env): the endpoints, and the keys only by reference (this env file's
    path). Jobs see the nodes' environment; `vton submit` forwards only what the user names."""
    return {
        "VTON_STACK_DIR": str(settings.state_dir),
        "VTON_S3_ENDPOINT": settings.s3_endpoint,
        "AWS_ENDPOINT_URL_S3": settings.s3_endpoint,
        "MLFLOW_S3_ENDPOINT_URL": settings.s3_endpoint,
        "AWS_DEFAULT_REGION": REGION,
        "VTON_BUCKET": DEFAULT_BUCKET,
        "MLFLOW_TRACKING_URI": settings.mlflow_uri,
        "VTON_RAY_JOB_ADDRESS": settings.ray_job_address,
        "VTON_RAY_GCS_ADDRESS": settings.ray_gcs_address,
        # Jobs and Ray workers get the keys by reference: this file's path, never the values.
        CREDENTIALS_FILE_ENV: str(settings.env_file),
    }


#: Keys that are secrets: never printed, passed to jobs by reference only.
SECRET_KEYS = frozenset({"AWS_SECRET_ACCESS_KEY", "AWS_ACCESS_KEY_ID", "AWS_SESSION_TOKEN"})
#: Names a KEY=VALUE file (readable where the job runs) that holds the keys; see orchestrator/credentials.py.
CREDENTIALS_FILE_ENV = "VTON_CREDENTIALS_FILE"


def write_env_file(path: Path, values: dict[str, str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text("".join(f"{k}={v}\n" for k, v in values.items()))
    tmp.chmod(stat.S_IRUSR | stat.S_IWUSR)
    tmp.replace(path)


def _bucket(url: str) -> str | None:
    from urllib.parse import urlparse

    parsed = urlparse(url)
    return parsed.netloc if parsed.scheme == "s3" else None


def read_env_file(path: Path) -> dict[str, str]:
    values: dict[str, str] = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            key, value = line.split("=", 1)
            values[key] = value
    return values


#: The local stack's Ray head listens on loopback only and runs with token auth off (services.ray_env).
STACK_RAY_AUTH_MODE = "disabled"


def match_stack_auth_mode(address: str | None) -> None:
    """Give a driver that joins the local stack's head the head's Ray auth mode.

    Ray 2.60's ``ray.init()`` of a new local cluster sets ``RAY_AUTH_MODE=token`` in its own process,
    and every child inherits it. A driver in token mode joins a head with auth off without any error,
    then has its actors cancelled before they run (a Tune sweep: every trial "never ran", 0 s).
    Call before Ray is imported: it reads the mode when it loads its config.
    """
    stack = os.environ.get("VTON_RAY_GCS_ADDRESS")
    if not address or not stack or _host_port(address) != _host_port(stack):
        return
    current = os.environ.get("RAY_AUTH_MODE")
    if current and current.lower() != STACK_RAY_AUTH_MODE:
        logging.getLogger(__name__).warning(
            "RAY_AUTH_MODE=%s in this environment, but the local stack's Ray head at %s runs with auth %s; "
            "this driver uses the head's mode", current, stack, STACK_RAY_AUTH_MODE)
    os.environ["RAY_AUTH_MODE"] = STACK_RAY_AUTH_MODE


def _host_port(address: str) -> str:
    host_port = address.split("://")[-1].rstrip("/")
    return host_port.replace("localhost:", "127.0.0.1:", 1)


#: What makes a process talk to the local stack's S3 server (and with its keys).
STACK_S3_KEYS = frozenset({"VTON_S3_ENDPOINT", "AWS_ENDPOINT_URL_S3", "MLFLOW_S3_ENDPOINT_URL", CREDENTIALS_FILE_ENV,
                           "VTON_BUCKET"}) | SECRET_KEYS


def apply_stack_env(state_dir: str | Path | None = None, urls: tuple[str, ...] | list[str] = ()) -> dict[str, str]:
    """Export the local stack's endpoints into ``os.environ`` (explicit variables win).

    ``urls``: the object-storage URLs the command will touch. One that names a bucket the local
    stack does not hold (``s3://my-real-bucket/...``) is not the stack's: its S3 endpoint and keys
    are then left out, so the data goes where the URL says (AWS, or the user's own endpoint)
    instead of being redirected to the local server. Returns what was applied; an absent env file
    (no local stack) returns an empty dict.
    """
    path = StackSettings.from_env(state_dir).env_file
    if not path.is_file():
        return {}
    values = read_env_file(path)
    stack_buckets = {values.get("VTON_BUCKET", DEFAULT_BUCKET), MLFLOW_BUCKET}
    foreign = sorted({_bucket(u) for u in urls if _bucket(u)} - stack_buckets)
    if foreign:
        values = {k: v for k, v in values.items() if k not in STACK_S3_KEYS}
    for key, value in values.items():
        os.environ.setdefault(key, value)
    if SECRET_KEYS & set(values):  # an env file written before the reference existed
        os.environ.setdefault(CREDENTIALS_FILE_ENV, str(path))
    return values
