"""Extra Ray nodes on this machine: a worker raylet joined to the local stack's head.

One machine can still exercise what a multi-node cluster does to a training run (workers on
different nodes, a node lost mid-run) because Ray allows several raylets per IP address. Each
extra node ``ray-node-<i>``:

- runs ``ray start --address=<head> --block`` in its own process session (stopping it signals the
  whole tree: raylet, agents, the workers it spawned; never the head), tracked by a PID file
  under ``<state>/ray-node-<i>/`` exactly like the stack's servers;
- has its own temp dir, because its session dir holds AF_UNIX sockets named like the head's; it
  sits at a short path (``/tmp/vton-ray-<hash>-n<i>``) so socket paths stay under 107 bytes;
- asks for dynamic ports (agents, workers) so it never competes with the head's fixed ones;
- advertises one unit of a custom resource ``vton_node_<i>``, so placement is visible (and can
  be forced) by resource name.

Functions here work against a head that is already running, so tests can add and remove a node
without restarting the session's stack.
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import requests

from cluster import processes
from cluster.errors import StackError
from cluster.services import find_binary, ray_env, ray_temp_path
from cluster.settings import StackSettings, node_environment

NODE_PREFIX = "ray-node-"
#: Small on purpose: extra local nodes exist to host a training worker or two, not data.
NODE_OBJECT_STORE_BYTES = 256 << 20


class NodeError(RuntimeError):
    pass


@dataclass(frozen=True)
class NodeHandle:
    index: int
    node_id: str  # Ray's hex node id, as the state API and ray.get_runtime_context() report it
    pid: int

    @property
    def name(self) -> str:
        return node_name(self.index)

    @property
    def resource(self) -> str:
        return node_resource(self.index)


def node_name(index: int) -> str:
    return f"{NODE_PREFIX}{index}"


def node_resource(index: int) -> str:
    return f"vton_node_{index}"


def node_temp_dir(settings: StackSettings, index: int) -> Path:
    """Beside the head's short temp dir (same hash), one per node; not created here."""
    head = ray_temp_path(settings)
    return head.with_name(f"{head.name}-n{index}")


def _pid_file(settings: StackSettings, index: int) -> Path:
    return settings.service_dir(node_name(index)) / "pid.json"


def _log_file(settings: StackSettings, index: int) -> Path:
    return settings.service_dir(node_name(index)) / "server.log"


def started_indices(settings: StackSettings) -> list[int]:
    """Indices of the extra nodes this state dir has a PID file for (running or not)."""
    found = []
    if settings.state_dir.is_dir():
        for entry in settings.state_dir.iterdir():
            suffix = entry.name[len(NODE_PREFIX):]
            if entry.name.startswith(NODE_PREFIX) and suffix.isdigit() and (entry / "pid.json").is_file():
                found.append(int(suffix))
    return sorted(found)


def pid_record(settings: StackSettings, index: int) -> processes.PidRecord | None:
    return processes.PidRecord.read(_pid_file(settings, index))


def cluster_nodes(settings: StackSettings) -> list[dict]:
    """The head's view of every node (the dashboard's state API over plain HTTP: no Ray import)."""
    reply = requests.get(f"{settings.ray_job_address}/api/v0/nodes", params={"limit": 1000, "detail": 1},
                         timeout=5)
    reply.raise_for_status()
    return reply.json()["data"]["result"]["result"]


def alive_node_id(settings: StackSettings, resource: str) -> str | None:
    """Id of the live node advertising ``resource`` (None while it is starting or once it is gone)."""
    for node in cluster_nodes(settings):
        if node["state"] == "ALIVE" and resource in node.get("resources_total", {}):
            return node["node_id"]
    return None


def head_node_id(settings: StackSettings) -> str:
    for node in cluster_nodes(settings):
        if node["state"] == "ALIVE" and node.get("is_head_node"):
            return node["node_id"]
    raise NodeError(f"no live Ray head at {settings.ray_job_address}")


def _command(settings: StackSettings, index: int, num_cpus: int) -> list[str]:
    find_binary("ray", "pip install 'ray[default,train,tune]==2.60.0' (or run `make setup`)")
    temp = node_temp_dir(settings, index)
    temp.mkdir(parents=True, exist_ok=True)
    # `ray start` through a wrapper: the plain CLI cannot join a loopback-only head (see there).
    return [
        sys.executable, "-m", "cluster.ray_worker_node", f"--address={settings.ray_gcs_address}", "--block",
        f"--node-ip-address={settings.host}",
        f"--num-cpus={num_cpus}", f"--resources={json.dumps({node_resource(index): 1})}",
        f"--object-store-memory={NODE_OBJECT_STORE_BYTES}", f"--temp-dir={temp}",
        # The head holds the fixed ports (agent 52365, workers 10002-19999); this node takes free ones.
        "--dashboard-agent-listen-port=0", "--min-worker-port=0", "--max-worker-port=0",
        "--disable-usage-stats",
    ]


def add_node(settings: StackSettings, index: int | None = None, num_cpus: int = 2, log=print,
             timeout_s: float = 90.0, env: dict[str, str | None] | None = None) -> NodeHandle:
    """Start extra node ``index`` (default: the lowest one not running) and wait until the head
    lists it alive. A node of that index that is already running is returned as it is.

    ``env``: changes to the node's environment (a value of None removes the variable), e.g. a node
    whose endpoint or weight cache differs from the others', as on a badly provisioned cluster."""
    # A head that has just started answers HTTP a moment before its state API lists itself.
    if not processes.wait_until(lambda: bool(head_node_id(settings)), min(timeout_s, 30.0)):
        raise StackError(f"cannot add a Ray node: no live Ray head answers at {settings.ray_job_address}; "
                         f"run `vton stack up` first")
    if index is None:
        running = {i for i in started_indices(settings) if _alive(settings, i)}
        index = next(i for i in range(1, len(running) + 2) if i not in running)
    if index < 1:
        raise ValueError(f"extra node index must be >= 1 (0 is the head), got {index}")
    record = pid_record(settings, index)
    if record is not None and record.alive():
        node_id = _wait_for_node(settings, index, record, timeout_s)
        log(f"{node_name(index)} already running (pid {record.pid}), node {node_id[:12]}")
        return NodeHandle(index, node_id, record.pid)
    started = time.monotonic()
    log_file = _log_file(settings, index)
    node_env = {**ray_env(), **node_environment(settings)}
    for key, value in (env or {}).items():
        if value is None:
            node_env.pop(key, None)
        else:
            node_env[key] = value
    record = processes.spawn(_command(settings, index, num_cpus), log_file, node_env,
                             cwd=settings.service_dir(node_name(index)))
    record.write(_pid_file(settings, index))
    try:
        node_id = _wait_for_node(settings, index, record, timeout_s)
    except NodeError:
        stop_node(settings, index, log=lambda _m: None)
        raise
    log(f"{node_name(index)} started (pid {record.pid}), node {node_id[:12]} with {num_cpus} CPU(s) and "
        f"resource {node_resource(index)} in {time.monotonic() - started:.1f}s")
    return NodeHandle(index, node_id, record.pid)


def _alive(settings: StackSettings, index: int) -> bool:
    record = pid_record(settings, index)
    return record is not None and record.alive()


def _wait_for_node(settings: StackSettings, index: int, record: processes.PidRecord, timeout_s: float) -> str:
    found: list[str] = []

    def joined() -> bool:
        node_id = alive_node_id(settings, node_resource(index)) if record.alive() else None
        if node_id:
            found.append(node_id)
        return bool(node_id) or not record.alive()

    processes.wait_until(joined, timeout_s)
    if not found:
        what = "exited" if not record.alive() else f"did not join within {timeout_s:.0f}s"
        raise NodeError(f"{node_name(index)} {what} (head {settings.ray_gcs_address}); last lines of "
                        f"{_log_file(settings, index)}:\n{processes.log_tail(_log_file(settings, index))}")
    return found[0]


def stop_node(settings: StackSettings, index: int, log=print, wait_dead_s: float = 60.0) -> None:
    """Stop extra node ``index`` gracefully and wait until the head marks it dead.

    SIGTERM makes Ray *drain* the node (up to 30 s) before it goes, and Ray Train treats that as a
    preemption notice: running work may finish first. Safe to call for a node that is not running;
    removes its PID file and temp dir.
    """
    _end_node(settings, index, log, wait_dead_s, processes.terminate_session, "stopped")


def kill_node(settings: StackSettings, index: int, log=print, wait_dead_s: float = 60.0) -> None:
    """Lose extra node ``index`` abruptly: SIGKILL its raylet, agents and workers at once, as when a
    machine dies or a spot instance is reclaimed without notice. Returns once the head has noticed
    (its health checks, ~15 s) and marked the node dead."""
    _end_node(settings, index, log, wait_dead_s, processes.kill_session, "killed")


def _end_node(settings: StackSettings, index: int, log, wait_dead_s: float, end, verb: str) -> None:
    record = pid_record(settings, index)
    if record is None:
        log(f"{node_name(index)} not started by this stack")
        return
    if record.alive() or processes.session_members(record.pid):
        end(record)
        log(f"{node_name(index)} {verb} (pid {record.pid})")
    _pid_file(settings, index).unlink(missing_ok=True)

    def gone() -> bool:
        try:
            return alive_node_id(settings, node_resource(index)) is None
        except requests.RequestException:
            return True  # a head that is down has no live node either

    processes.wait_until(gone, wait_dead_s)
    shutil.rmtree(node_temp_dir(settings, index), ignore_errors=True)


def stop_all(settings: StackSettings, log=print) -> None:
    for index in started_indices(settings):
        stop_node(settings, index, log=log)


def ensure_nodes(settings: StackSettings, total: int, num_cpus: int, log=print) -> list[NodeHandle]:
    """`vton stack up --nodes N`: the head plus extra nodes 1..N-1, each started if not running.
    Extra nodes beyond N are left as they are (``down`` stops them)."""
    return [add_node(settings, index, num_cpus=num_cpus, log=log) for index in range(1, total)]
