"""Object-store keys reach Ray jobs and training workers by reference, never by value.

Whatever goes into a Ray ``runtime_env`` is stored by the head: `ray job list` and the dashboard
show it to anyone who can reach port 8265, and the runtime-env agent writes it to its log. So the
keys are never put there. What travels instead is *where* the keys are:

- on a real cluster, the nodes' own environment holds them (a Kubernetes secret through
  ``secretKeyRef``, or an instance role that needs no keys at all) and nothing has to travel;
- otherwise ``VTON_CREDENTIALS_FILE`` names a ``KEY=VALUE`` file readable on the nodes (for the
  local stack, its env file, mode 0600), and every process that talks to S3 (the job driver, the
  Ray Train workers, Tune trials) loads the keys from it with :func:`load`.
"""

from __future__ import annotations

import os
from pathlib import Path

from cluster.settings import CREDENTIALS_FILE_ENV, SECRET_KEYS, read_env_file

__all__ = ["CREDENTIALS_FILE_ENV", "SECRET_KEYS", "load", "without_secrets"]

_KEY_PAIR = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")


def load() -> list[str]:
    """Export the keys the reference names into ``os.environ``, unless this process already has
    keys (the node's environment wins). Returns the variable names it set, never their values.

    Cheap and idempotent: call it wherever S3 is about to be used in a process Ray started.
    """
    if all(os.environ.get(k) for k in _KEY_PAIR):
        return []
    path = os.environ.get(CREDENTIALS_FILE_ENV)
    if not path:
        return []
    try:
        values = read_env_file(Path(path))
    except OSError:
        # Not on this node: the keys must come from the node's environment or an instance role;
        # the S3 client's error names the missing keys if neither provides them.
        return []
    loaded = []
    for key in sorted(SECRET_KEYS):
        if values.get(key) and not os.environ.get(key):
            os.environ[key] = values[key]
            loaded.append(key)
    return loaded


def without_secrets(env: dict[str, str]) -> dict[str, str]:
    """``env`` minus the key variables: what may be placed in a runtime_env or printed."""
    return {k: v for k, v in env.items() if k not in SECRET_KEYS}
