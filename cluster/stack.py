"""`vton stack up|down|status`: the local stack (S3 server, MLflow server, Ray head) under one state dir.

``up`` is idempotent: a healthy service is left alone, a missing one is started and waited for;
``up --nodes N`` also joins N-1 extra Ray nodes to the head (cluster/nodes.py).
``down`` stops only the processes whose PID files this state dir holds. The env file written by
``up`` is how every `vton` command and the tests find the endpoints.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from cluster import nodes as extra_nodes
from cluster.errors import StackError
from cluster import processes
from cluster.services import SERVICES, Service, ray_temp_dir, s3_client
from cluster.settings import (
    DEFAULT_BUCKET,
    MLFLOW_BUCKET,
    Credentials,
    StackSettings,
    stack_environment,
    write_env_file,
)


@dataclass(frozen=True)
class ServiceStatus:
    name: str
    description: str
    state: str  # "running" | "stopped" | "unhealthy"
    pid: int | None
    address: str


def _pid_file(settings: StackSettings, service: Service) -> Path:
    return settings.service_dir(service.name) / "pid.json"


def _log_file(settings: StackSettings, service: Service) -> Path:
    return settings.service_dir(service.name) / "server.log"


def _check(service: Service, settings: StackSettings, creds: Credentials) -> bool:
    try:
        return bool(service.healthy(settings, creds))
    except Exception:  # noqa: BLE001 - "not answering" in whichever way the client reports it
        return False


def service_status(settings: StackSettings, service: Service, creds: Credentials) -> ServiceStatus:
    record = processes.PidRecord.read(_pid_file(settings, service))
    alive = record is not None and record.alive()
    if not alive:
        state = "stopped"
    else:
        state = "running" if _check(service, settings, creds) else "unhealthy"
    return ServiceStatus(service.name, service.description, state, record.pid if alive else None,
                         service.address(settings))


def status(settings: StackSettings) -> list[ServiceStatus]:
    """The three services. Extra Ray nodes are reported apart (:func:`node_statuses`): callers such
    as the test fixture decide from this list whether the stack is up, and an extra node that is
    starting or stopping must not make a running stack look down."""
    creds = Credentials.load_or_create(settings.state_dir)
    return [service_status(settings, svc, creds) for svc in SERVICES]


def node_statuses(settings: StackSettings) -> list[ServiceStatus]:
    """Every extra Ray node this state dir started (none unless `up --nodes N` or a test added one)."""
    return [node_status(settings, index) for index in extra_nodes.started_indices(settings)]


def node_status(settings: StackSettings, index: int) -> ServiceStatus:
    """An extra node is running when its process lives and the head lists it alive."""
    record = extra_nodes.pid_record(settings, index)
    alive = record is not None and record.alive()
    state = "stopped"
    if alive:
        try:
            state = "running" if extra_nodes.alive_node_id(settings, extra_nodes.node_resource(index)) else "unhealthy"
        except Exception:  # noqa: BLE001 - the head not answering
            state = "unhealthy"
    return ServiceStatus(extra_nodes.node_name(index), f"Ray worker node, resource {extra_nodes.node_resource(index)}",
                         state, record.pid if alive else None, f"joined to {settings.ray_gcs_address}")


def up(settings: StackSettings, log=print, nodes: int = 1, node_cpus: int = 2) -> dict[str, str]:
    """Start whatever is not running, wait until each answers, write the env file; with
    ``nodes > 1`` also make sure extra Ray nodes 1..nodes-1 are joined to the head."""
    creds = Credentials.load_or_create(settings.state_dir)
    for service in SERVICES:
        _ensure_running(settings, service, creds, log)
        if service.name == "s3":
            _ensure_buckets(settings, creds)
    env = stack_environment(settings, creds)
    write_env_file(settings.env_file, env)
    extra_nodes.ensure_nodes(settings, nodes, node_cpus, log=log)
    log(f"env file: {settings.env_file}")
    return env


def _ensure_running(settings: StackSettings, service: Service, creds: Credentials, log) -> None:
    pid_file = _pid_file(settings, service)
    record = processes.PidRecord.read(pid_file)
    if record is not None and record.alive():
        if processes.wait_until(lambda: _check(service, settings, creds), service.start_timeout_s):
            log(f"{service.name:7s} already running (pid {record.pid}) at {service.address(settings)}")
            return
        raise StackError(
            f"{service.description} (pid {record.pid}) is running but not answering at "
            f"{service.address(settings)}; see {_log_file(settings, service)} or run `vton stack down`"
        )
    for port, user in sorted((p, u) for u, p in service.ports(settings).items()):
        if processes.port_in_use(port, settings.host):
            raise StackError(
                f"port {port} ({user} of the {service.description}) on {settings.host} is already in use; "
                f"stop what holds it or move the stack's ports with VTON_*_PORT variables"
            )
    log_file = _log_file(settings, service)
    started = time.monotonic()
    record = processes.spawn(service.command(settings, creds), log_file, service.environment(settings, creds),
                             cwd=settings.service_dir(service.name))
    record.write(pid_file)
    ready = processes.wait_until(
        lambda: record.alive() and _check(service, settings, creds), service.start_timeout_s
    )
    if not ready:
        processes.terminate_session(record)
        pid_file.unlink(missing_ok=True)
        raise StackError(
            f"{service.description} did not become healthy within {service.start_timeout_s:.0f}s; "
            f"last lines of {log_file}:\n{processes.log_tail(log_file)}"
        )
    log(f"{service.name:7s} started (pid {record.pid}) at {service.address(settings)} "
        f"in {time.monotonic() - started:.1f}s")


def _ensure_buckets(settings: StackSettings, creds: Credentials) -> None:
    client = s3_client(settings, creds)
    existing = {b["Name"] for b in client.list_buckets().get("Buckets", [])}
    for bucket in (DEFAULT_BUCKET, MLFLOW_BUCKET):
        if bucket not in existing:
            client.create_bucket(Bucket=bucket)


def down(settings: StackSettings, log=print) -> None:
    """Stop, in reverse start order, only the services this state dir started (extra nodes first)."""
    extra_nodes.stop_all(settings, log=log)
    for service in reversed(SERVICES):
        pid_file = _pid_file(settings, service)
        record = processes.PidRecord.read(pid_file)
        if record is None:
            log(f"{service.name:7s} not started by this stack")
            continue
        if record.alive() or processes.session_members(record.pid):
            processes.stop_session(record, service.stop_grace_s)
            log(f"{service.name:7s} stopped (pid {record.pid})")
        else:
            log(f"{service.name:7s} was not running")
        pid_file.unlink(missing_ok=True)
    # Ray's session dirs (sockets, per-process logs) live at a short path outside the state dir.
    shutil.rmtree(ray_temp_dir(settings), ignore_errors=True)
    settings.env_file.unlink(missing_ok=True)


def leftover_processes(settings: StackSettings) -> list[int]:
    """PIDs of any process still in a session this stack started (for tests and `status`)."""
    pids: list[int] = []
    records = [processes.PidRecord.read(_pid_file(settings, service)) for service in SERVICES]
    records += [extra_nodes.pid_record(settings, index) for index in extra_nodes.started_indices(settings)]
    for record in records:
        if record is not None:
            pids.extend(processes.session_members(record.pid))
    return pids
