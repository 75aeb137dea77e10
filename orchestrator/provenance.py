"""Which code a run trained with: the git commit every registered version is tagged with.

A Ray job or Tune trial runs from a copy of the project without ``.git``, so the commit is taken
where the work is launched (``vton submit``, ``vton tune``, ``vton train``) and handed to every
worker as ``VTON_GIT_COMMIT``; only where that is unset is git asked.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]
GIT_COMMIT_ENV = "VTON_GIT_COMMIT"


def git_commit() -> str:
    """``VTON_GIT_COMMIT`` if set, else the project checkout's HEAD, else ``"unknown"``."""
    if os.environ.get(GIT_COMMIT_ENV):
        return os.environ[GIT_COMMIT_ENV]
    try:
        out = subprocess.run(["git", "-C", str(PROJECT_ROOT), "rev-parse", "HEAD"], capture_output=True,
                             text=True, timeout=5)
        return out.stdout.strip() if out.returncode == 0 and out.stdout.strip() else "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"
