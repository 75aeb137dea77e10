"""Start and stop long-running server processes that belong to one state directory.

Each service runs in its own process session (``start_new_session``), so stopping it can signal
the whole tree it spawned (Ray's GCS, raylet, dashboard and workers; MLflow's gunicorn workers)
and nothing else on the machine. A PID file records the leader together with its start time, so a
recycled PID is never mistaken for ours.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class PidRecord:
    pid: int
    start_ticks: int  # /proc/<pid>/stat field 22: distinguishes a recycled PID

    @classmethod
    def read(cls, path: Path) -> "PidRecord | None":
        try:
            data = json.loads(path.read_text())
            return cls(int(data["pid"]), int(data["start_ticks"]))
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def write(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"pid": self.pid, "start_ticks": self.start_ticks}))

    def alive(self) -> bool:
        return _start_ticks(self.pid) == self.start_ticks


def _start_ticks(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may contain spaces; fields after it are space separated.
    fields = stat[stat.rindex(")") + 2 :].split()
    if fields[0] == "Z":  # zombie: exited, only waiting to be reaped
        return None
    return int(fields[19])


def spawn(cmd: list[str], log_path: Path, env: dict[str, str], cwd: Path | None = None) -> PidRecord:
    """Start ``cmd`` detached in a new session, output appended to ``log_path``."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            cmd,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            cwd=cwd,
            start_new_session=True,
        )
    ticks = _start_ticks(proc.pid)
    if ticks is None:
        raise RuntimeError(f"{cmd[0]} exited immediately; see {log_path}")
    return PidRecord(proc.pid, ticks)


def session_members(sid: int) -> list[int]:
    """Every live process whose session id is ``sid`` (the tree a service leader started)."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        if int(fields[3]) == sid and fields[0] != "Z":
            members.append(int(entry.name))
    return members


def terminate_session(record: PidRecord, grace_s: float = 20.0) -> None:
    """SIGTERM the leader (it cleans up its children) and wait ``grace_s``, then stop what is left of
    its session: for a Ray worker node, whose leader drains it before it goes."""
    if record.alive():
        _signal(record.pid, signal.SIGTERM)
        _wait(lambda: not record.alive(), grace_s)
    stop_session(record, 5.0)


def stop_session(record: PidRecord, grace_s: float = 20.0) -> None:
    """SIGTERM every process of the leader's session at once, the leader too (what `ray stop` does
    to a Ray node's processes), then SIGKILL whatever is left after ``grace_s``: for a service that
    goes away with everything it started. Leader first (``terminate_session``), a Ray head's leader
    waited on its processes one by one and `vton stack down` took ~25 s."""
    for pid in session_members(record.pid):
        _signal(pid, signal.SIGTERM)
    _wait(lambda: not session_members(record.pid), grace_s)
    for pid in session_members(record.pid):
        _signal(pid, signal.SIGKILL)
    _wait(lambda: not session_members(record.pid), 5.0)


def kill_session(record: PidRecord, timeout_s: float = 10.0) -> None:
    """SIGKILL every process of the leader's session at once, without a grace period: what a
    machine that dies looks like to the rest of a cluster (tests of lost nodes)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        members = session_members(record.pid)  # again after each round: a dying parent may still fork
        if not members:
            return
        for pid in members:
            _signal(pid, signal.SIGKILL)
        time.sleep(0.1)


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def _wait(done, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if done():
            return True
        time.sleep(0.2)
    return done()


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return True
    return False


def wait_until(check, timeout_s: float, interval_s: float = 0.5) -> bool:
    """Poll ``check()`` (exceptions count as "not yet") until it is true or the time is up."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            if check():
                return True
        except Exception:  # noqa: BLE001 - a server that is still starting fails in many ways
            pass
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval_s)


def log_tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"
