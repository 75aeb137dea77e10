"""Where runs keep their checkpoints: a URL from the config, resolved for Ray Train and pyarrow.

S3 goes through a pyarrow filesystem aimed at the configured endpoint (the local stack's or the
user's), because Ray Train and pyarrow would otherwise talk to AWS itself.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from orchestrator import credentials
from orchestrator.config import Config


def run_storage(cfg: Config) -> tuple[str, Any]:
    """(storage_path, pyarrow filesystem or None) for Ray Train's RunConfig."""
    return storage_location(storage_url(cfg))

def storage_url(cfg: Config) -> str:
    """Where runs keep checkpoints, as a URL: ``checkpoint.storage_path``; else
    ``s3://$VTON_BUCKET/checkpoints`` whenever a bucket is configured (AWS S3 or any S3-compatible
    endpoint); else ``~/.vton/checkpoints`` on this machine, usable by one-node runs only."""
    if cfg.checkpoint.storage_path:
        return cfg.checkpoint.storage_path
    bucket = os.environ.get("VTON_BUCKET")
    if bucket:
        return f"s3://{bucket}/checkpoints"
    return str(Path.home() / ".vton" / "checkpoints")


def is_node_local(url: str) -> bool:
    """A path (or file://) that each node resolves on its own disk, unlike object storage."""
    return urlparse(url).scheme in ("", "file")

def storage_location(url: str) -> tuple[str, Any]:
    """``s3://bucket/key`` | ``file:///path`` | a path -> (path for pyarrow, filesystem or None).

    S3 goes through a pyarrow filesystem aimed at the stack's (or the user's) endpoint, because
    Ray Train and pyarrow would otherwise talk to AWS itself.
    """
    parsed = urlparse(url)
    if parsed.scheme == "s3":
        from pyarrow import fs

        credentials.load()  # a Ray job driver or Tune trial gets the keys by reference

        endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("VTON_S3_ENDPOINT")
        kwargs: dict[str, Any] = {"region": os.environ.get("AWS_DEFAULT_REGION", "us-east-1")}
        if endpoint:
            ep = urlparse(endpoint)
            kwargs.update(endpoint_override=ep.netloc, scheme=ep.scheme or "http")
        if os.environ.get("AWS_ACCESS_KEY_ID"):
            kwargs.update(access_key=os.environ["AWS_ACCESS_KEY_ID"], secret_key=os.environ["AWS_SECRET_ACCESS_KEY"])
        return f"{parsed.netloc}{parsed.path}".rstrip("/"), fs.S3FileSystem(**kwargs)
    if parsed.scheme == "file":
        return parsed.path, None
    return str(Path(url).expanduser().resolve()), None
