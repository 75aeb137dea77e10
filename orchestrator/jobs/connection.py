"""Joining a Ray cluster from a driver on this machine (`vton train`, `vton tune`).

The cluster is ``ray.address``, else ``RAY_ADDRESS``, else the local stack's head when it answers;
only with none of those does the driver start a private Ray, and it says so. (``ray.init()`` with no
address next to a running stack started a second Ray instance, and `ray status` against the stack
then timed out: "Found multiple active Ray instances".) The project travels as the runtime
env's ``working_dir``, so every worker imports the driver's code; ``VTON_GIT_COMMIT`` goes with it.
"""

from __future__ import annotations

import os
import socket
import sys
from urllib.parse import urlparse

from cluster.settings import match_stack_auth_mode
from orchestrator.config import Config


def _answers(address: str, timeout_s: float = 1.0) -> bool:
    host, _, port = address.split("://")[-1].rstrip("/").rpartition(":")
    try:
        with socket.create_connection((host or "127.0.0.1", int(port)), timeout=timeout_s):
            return True
    except (OSError, ValueError):
        return False


def cluster_address(cfg: Config) -> tuple[str, str]:
    """(GCS address or "" for a private Ray, what it is in words)."""
    address = cfg.ray.address or os.environ.get("RAY_ADDRESS", "")
    stack = os.environ.get("VTON_RAY_GCS_ADDRESS", "")
    if address.startswith(("http://", "https://")):  # a job-server address: the GCS one is what ray.init takes
        address = stack
    if address:
        return address, f"the Ray cluster at {address}"
    if stack and _answers(stack):
        return stack, f"the local stack's Ray at {stack}"
    return "", "a private Ray instance for this run (no ray.address, no RAY_ADDRESS, no local stack up)"


def connect(cfg: Config, announce: bool = True, target: tuple[str, str] | None = None) -> str:
    """Join the cluster ``cluster_address`` names (or start a private one); returns its description.
    ``target``: that answer when the caller already has it (asking twice probes the stack twice)."""
    from orchestrator.jobs.launch import FORWARDED_ENV
    from orchestrator.jobs.submit import WORKING_DIR_EXCLUDES
    from orchestrator.provenance import GIT_COMMIT_ENV, PROJECT_ROOT, git_commit

    address, where = target or cluster_address(cfg)
    if address and urlparse(f"//{address.split('://')[-1]}").hostname in ("127.0.0.1", "localhost"):
        # Ray 2.60 swaps a loopback head address for the machine's external IP, which a head
        # bound to loopback does not answer; read when Ray is imported, so set before that.
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    match_stack_auth_mode(address)
    import ray

    if ray.is_initialized():
        return where
    if announce:
        print(f"[vton] driver on {where}", file=sys.stderr, flush=True)
    env = {k: os.environ[k] for k in FORWARDED_ENV if k in os.environ}
    env[GIT_COMMIT_ENV] = git_commit()  # workers run from a copy of the project without .git
    if address and "://" not in address and address != "auto":
        # Ray Train's placement-group cleaners (detached actors) find the cluster through the state
        # API, which auto-detects it unless told: on a node that runs a second Ray instance that is
        # an error, the cleaner thread dies, and every PBT pause leaks its trial's worker bundles.
        env["RAY_ADDRESS"] = address
    private = {} if address else {"include_dashboard": False}
    ray.init(address=address or None, log_to_driver=True, **private,
             runtime_env={"working_dir": str(PROJECT_ROOT), "excludes": WORKING_DIR_EXCLUDES, "env_vars": env})
    return where
