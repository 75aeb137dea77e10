"""The object store behind shard URLs: ``s3://bucket/prefix`` (boto3) and ``file:///abs/path``.

Why a small interface of our own instead of fsspec: the data plane needs only a dozen operations
(put a finished shard, read it back whole or by byte range, list, stat), and owning them lets every
error name the URL at fault and say what to do (missing bucket, no credentials, endpoint down)
instead of surfacing a botocore traceback inside a DataLoader worker.

* ``open_store(url)`` -> ``ObjectStore`` rooted at ``url``; keys are relative to that root.
  Plain local paths (``/data/shards``, ``out/shards``) mean ``file://``.
* S3 endpoint: ``VTON_S3_ENDPOINT``, else ``AWS_ENDPOINT_URL_S3``, else AWS itself. Keys, region
  and profiles come from the standard AWS variables / files (boto3's usual chain).
* ``put_file`` uses boto3's managed transfer, so shards above ``MULTIPART_THRESHOLD`` go up as a
  multipart upload in parallel parts. Every put can record the object's sha256 as S3 user metadata
  (``x-amz-meta-sha256``), so an idempotent re-run can trust an existing object without
  downloading it.
* Importing this module registers an ``s3`` scheme with ``webdataset.gopen``, so
  ``webdataset.WebDataset("s3://bucket/shard-{000000..000009}.tar")`` streams shards through
  boto3 streaming bodies (no ``aws`` CLI subprocess, no fsspec).

boto3 clients are created lazily per process (a forked DataLoader worker must not reuse its
parent's connection pool) and shared by threads of that process (clients are thread-safe).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import io
import os
import shutil
import tempfile
import threading
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO
from urllib.parse import unquote, urlparse

MiB = 1 << 20
#: Objects at least this big are uploaded as multipart uploads of ``MULTIPART_CHUNK`` parts.
MULTIPART_THRESHOLD = 64 * MiB
MULTIPART_CHUNK = 64 * MiB
MULTIPART_CONCURRENCY = 4
_SHA_META = "sha256"


class StoreError(RuntimeError):
    """An object store operation failed; the message names the URL and what to check."""


class ObjectNotFoundError(StoreError, FileNotFoundError):
    """The key does not exist (the bucket / directory does)."""


class RangeNotSatisfiableError(StoreError):
    """A ranged read starts beyond the end of the object (it is shorter than expected)."""


@dataclass(frozen=True)
class ObjectInfo:
    """What a store knows about one object without reading it."""

    key: str
    size: int
    sha256: str | None  # recorded checksum (S3 metadata) or computed (local files); None if unknown


def _check_key(key: str, root_url: str) -> str:
    """Keys are relative, '/'-separated and never climb out of the store root."""
    if not key or key.startswith("/") or "\\" in key or any(p in ("", ".", "..") for p in key.split("/")):
        raise ValueError(f"invalid object key {key!r} under {root_url}: keys are relative paths "
                         "without empty, '.' or '..' components")
    return key


class ObjectStore(ABC):
    """A flat key -> bytes namespace under one root URL."""

    root_url: str

    def url_for(self, key: str) -> str:
        """The absolute URL of ``key`` (what error messages and manifests name)."""
        return f"{self.root_url.rstrip('/')}/{_check_key(key, self.root_url)}"

    @abstractmethod
    def put_file(self, key: str, path: str | Path, sha256: str | None = None, move: bool = False) -> None:
        """Store the file at ``path`` under ``key`` (atomically: readers never see half an object).

        ``move=True`` lets a local store rename instead of copy (the caller gives the file up).
        """

    @abstractmethod
    def put_bytes(self, key: str, data: bytes, sha256: str | None = None) -> None:
        """Store ``data`` under ``key`` atomically."""

    @abstractmethod
    def open_read(self, key: str) -> BinaryIO:
        """A streaming, read-only file object over the whole object (close it when done)."""

    @abstractmethod
    def get_range(self, key: str, start: int, end: int) -> bytes:
        """Bytes ``[start, end)`` of the object; fewer if the object is shorter than ``end``."""

    @abstractmethod
    def stat(self, key: str) -> ObjectInfo:
        """Size and checksum; ``ObjectNotFoundError`` if absent."""

    @abstractmethod
    def list(self, prefix: str = "") -> list[str]:
        """Sorted keys under the root that start with ``prefix``."""

    @abstractmethod
    def delete(self, key: str) -> None:
        """Remove ``key``; removing an absent key is not an error."""

    def get_bytes(self, key: str) -> bytes:
        with self.open_read(key) as f:
            return f.read()

    def exists(self, key: str) -> bool:
        try:
            self.stat(key)
        except ObjectNotFoundError:
            return False
        return True

    def size(self, key: str) -> int:
        return self.stat(key).size


# --------------------------------------------------------------------------------------- file://


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(4 * MiB), b""):
            h.update(chunk)
    return h.hexdigest()


class FileStore(ObjectStore):
    """Objects are files under a local directory (the embedded default, and the P4 baseline).

    Writes go to a temporary file in the target directory and are renamed into place, so a crash
    never leaves a truncated object under its final name. ``stat`` computes the sha256 (a local
    read is cheap compared with re-creating a shard).
    """

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self.root_url = self.root.as_uri()

    def _path(self, key: str) -> Path:
        return self.root / _check_key(key, self.root_url)

    def _tmp_for(self, path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
        os.close(fd)
        # mkstemp makes 0600 files; objects should get the usual umask-derived permissions.
        os.chmod(tmp, 0o666 & ~_umask())
        return Path(tmp)

    def put_file(self, key: str, path: str | Path, sha256: str | None = None, move: bool = False) -> None:
        dest = self._path(key)
        src = Path(path)
        if not src.is_file():
            raise StoreError(f"cannot store {self.url_for(key)}: source file {src} does not exist")
        dest.parent.mkdir(parents=True, exist_ok=True)
        if move:
            try:
                os.chmod(src, 0o666 & ~_umask())
                os.replace(src, dest)
                return
            except OSError:  # another filesystem: fall back to copy + rename
                pass
        tmp = self._tmp_for(dest)
        try:
            shutil.copyfile(src, tmp)
            os.replace(tmp, dest)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        if move:
            src.unlink(missing_ok=True)

    def put_bytes(self, key: str, data: bytes, sha256: str | None = None) -> None:
        dest = self._path(key)
        tmp = self._tmp_for(dest)
        try:
            tmp.write_bytes(data)
            os.replace(tmp, dest)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise

    def _missing(self, key: str) -> ObjectNotFoundError:
        if not self.root.is_dir():
            return ObjectNotFoundError(f"{self.url_for(key)}: directory {self.root} does not exist")
        return ObjectNotFoundError(f"{self.url_for(key)}: no such object")

    def open_read(self, key: str) -> BinaryIO:
        try:
            return open(self._path(key), "rb")
        except FileNotFoundError:
            raise self._missing(key) from None

    def get_range(self, key: str, start: int, end: int) -> bytes:
        with self.open_read(key) as f:
            f.seek(start)
            return f.read(max(0, end - start))

    def stat(self, key: str) -> ObjectInfo:
        path = self._path(key)
        if not path.is_file():
            raise self._missing(key)
        return ObjectInfo(key, path.stat().st_size, _sha256_file(path))

    def list(self, prefix: str = "") -> list[str]:
        if not self.root.is_dir():
            return []
        keys = []
        for dirpath, _dirs, files in os.walk(self.root):
            for name in files:
                if name.startswith(".") and name.endswith(".part"):
                    continue  # an upload in progress (or a crashed one), not an object
                key = Path(dirpath, name).relative_to(self.root).as_posix()
                if key.startswith(prefix):
                    keys.append(key)
        return sorted(keys)

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)


# ----------------------------------------------------------------------------------------- s3://


#: ``VTON_S3_ENDPOINT=aws``: AWS S3 itself, said on purpose (see ``require_explicit_endpoint``).
AWS_ENDPOINT_NAME = "aws"


def s3_endpoint() -> str | None:
    """The S3 endpoint this process talks to (None = AWS itself)."""
    endpoint = os.environ.get("VTON_S3_ENDPOINT") or os.environ.get("AWS_ENDPOINT_URL_S3") or None
    return None if endpoint and endpoint.lower() == AWS_ENDPOINT_NAME else endpoint


def require_explicit_endpoint(url: str | Path) -> str:
    """Before an upload to ``url``: the endpoint it goes to, in words; ``ValueError`` when that
    would be AWS S3 without anyone saying so. Run from another directory, `vton shard build` found
    no local stack, no endpoint was set, and the shards went to real AWS with whatever credentials
    were around."""
    if urlparse(str(url)).scheme != "s3":
        return f"{url} (local files)"
    endpoint = s3_endpoint() or os.environ.get("AWS_ENDPOINT_URL")  # the latter: boto3's for every service
    if endpoint:
        return f"the S3 endpoint {endpoint}"
    if (os.environ.get("VTON_S3_ENDPOINT") or "").lower() == AWS_ENDPOINT_NAME:
        return "AWS S3 (VTON_S3_ENDPOINT=aws)"
    raise ValueError(
        f"{url}: no S3 endpoint is set and no local stack was found (looked for "
        f"{Path(os.environ.get('VTON_STACK_DIR') or Path.cwd() / '.vton' / 'stack') / 'stack.env'}), so this would "
        "upload to AWS S3 with whatever credentials are around. Say where: VTON_S3_ENDPOINT=aws for AWS, "
        "VTON_S3_ENDPOINT=http://HOST:PORT for your server, or VTON_STACK_DIR=<checkout>/.vton/stack for the local stack")


_clients: dict[tuple, object] = {}
_clients_lock = threading.Lock()
_CREDENTIAL_VARS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
                    "AWS_DEFAULT_REGION", "AWS_REGION", "AWS_SHARED_CREDENTIALS_FILE", "AWS_CONFIG_FILE")


_sessions: dict[tuple, object] = {}


def _session(env_key: tuple):
    """One boto3 session per credential environment, shared by the process tree: it caches the
    parsed service models, so a forked writer or loader worker creates its client in ~20 ms
    instead of re-reading botocore's JSON (~150-500 ms). Sessions also cache the credentials
    they resolved, hence one per environment. Clients (and their sockets) stay per process."""
    import boto3

    session = _sessions.get(env_key)
    if session is None:
        session = _sessions[env_key] = boto3.session.Session()
    return session


def s3_client():
    """The boto3 S3 client of this process for the current endpoint (created once per pid)."""
    from botocore.config import Config

    endpoint = s3_endpoint()
    # Keyed by pid (a forked loader worker must not share its parent's sockets) and by the
    # variables boto3 reads, so a changed environment gets a client that sees the change.
    env_key = tuple(os.environ.get(v) for v in _CREDENTIAL_VARS)
    cache_key = (os.getpid(), endpoint) + env_key
    with _clients_lock:
        client = _clients.get(cache_key)
        if client is None:
            config = Config(
                retries={"max_attempts": 3, "mode": "standard"},
                connect_timeout=5,
                read_timeout=120,
                max_pool_connections=32,
                # Path-style addressing: local servers (SeaweedFS, MinIO) are reached by IP or a
                # host name without per-bucket DNS. No SigV4 payload hash (botocore skips it on
                # HTTPS already; on a plain-HTTP endpoint it re-reads every upload to hash it):
                # bodies carry a checksum header instead, which is signed and which the server verifies.
                s3={"addressing_style": "path", "payload_signing_enabled": False} if endpoint else {},
            )
            client = _session(env_key).client("s3", endpoint_url=endpoint, config=config)
            _clients[cache_key] = client
        return client


class _S3Errors:
    """Turns botocore exceptions into ``StoreError``s that name the URL and the likely fix."""

    def __init__(self, store: "S3Store", url: str) -> None:
        self.store, self.url = store, url

    def __enter__(self) -> None:
        return None

    def __exit__(self, etype, exc, tb) -> bool:
        from boto3.exceptions import Boto3Error
        from botocore.exceptions import BotoCoreError, ClientError

        if exc is None or not isinstance(exc, (BotoCoreError, ClientError, Boto3Error)):
            return False  # our own errors (bad keys, StoreError) pass through unchanged
        cause = exc.__cause__ or exc.__context__
        if isinstance(exc, Boto3Error) and isinstance(cause, (BotoCoreError, ClientError)):
            exc = cause  # upload_file wraps the ClientError in S3UploadFailedError
        raise self.store._translate(exc, self.url) from exc


class _StreamingReader(io.RawIOBase):
    """A boto3 ``StreamingBody`` as a file object whose errors name the URL.

    A connection dropped mid-object surfaces as ``StoreError`` instead of a bare urllib3 error.
    """

    def __init__(self, body, url: str) -> None:
        super().__init__()
        self._body, self._url = body, url

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        try:
            return self._body.read(None if size is None or size < 0 else size)
        except Exception as exc:  # noqa: BLE001 - whichever transport error, say which object
            raise StoreError(f"{self._url}: read failed mid-object: {exc}") from exc

    def readinto(self, b) -> int:
        data = self.read(len(b))
        b[: len(data)] = data
        return len(data)

    def close(self) -> None:
        if not self.closed:
            with contextlib.suppress(Exception):
                self._body.close()
        super().close()


def _checksum(sha256: str | None) -> dict[str, str]:
    """The object checksum header for a known sha256 (hex): the server verifies the bytes it
    received against it, and the client hashes nothing again."""
    return {"ChecksumSHA256": base64.b64encode(bytes.fromhex(sha256)).decode()} if sha256 else {}


class S3Store(ObjectStore):
    """Objects under ``s3://bucket/prefix`` through boto3."""

    def __init__(self, bucket: str, prefix: str) -> None:
        if len(bucket) < 3:
            raise ValueError(f"s3://{bucket}/: bucket names have at least 3 characters")
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.root_url = f"s3://{bucket}/{self.prefix}".rstrip("/")
        self._bucket_checked = False

    @property
    def client(self):
        return s3_client()

    def _key(self, key: str) -> str:
        _check_key(key, self.root_url)
        return f"{self.prefix}/{key}" if self.prefix else key

    def _errors(self, key: str | None = None) -> _S3Errors:
        return _S3Errors(self, self.url_for(key) if key else self.root_url)

    def _translate(self, exc: BaseException, url: str) -> StoreError:
        from botocore import exceptions as bx

        endpoint = s3_endpoint() or "AWS S3"
        if isinstance(exc, bx.NoCredentialsError):
            return StoreError(f"{url}: no S3 credentials: set AWS_ACCESS_KEY_ID and "
                              "AWS_SECRET_ACCESS_KEY (for the local stack: `vton stack up`, then "
                              "export the variables of .vton/stack/stack.env)")
        if isinstance(exc, (bx.EndpointConnectionError, bx.ConnectTimeoutError, bx.ConnectionClosedError)):
            return StoreError(f"{url}: cannot reach the S3 endpoint {endpoint} ({exc}); is the "
                              "server running and VTON_S3_ENDPOINT / AWS_ENDPOINT_URL_S3 right?")
        if isinstance(exc, bx.ClientError):
            err = exc.response.get("Error", {})
            code = str(err.get("Code", ""))
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if code == "NoSuchBucket":
                return StoreError(f"{url}: bucket '{self.bucket}' does not exist at {endpoint}; "
                                  "create it first")
            if code in ("NoSuchKey", "404", "NotFound") or status == 404:
                if not self._bucket_exists():
                    return StoreError(f"{url}: bucket '{self.bucket}' does not exist at {endpoint}; "
                                      "create it first")
                return ObjectNotFoundError(f"{url}: no such object")
            if code in ("InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied", "403") or status == 403:
                return StoreError(f"{url}: the S3 endpoint {endpoint} rejected the credentials "
                                  f"({code or status}); check AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY")
            if code == "InvalidRange" or status == 416:
                return RangeNotSatisfiableError(f"{url}: requested byte range lies beyond the end of the "
                                                "object (truncated object?)")
            message = f"{url}: S3 error {code or status}: {err.get('Message', exc)}"
            if code == "InternalError" or (isinstance(status, int) and status >= 500):
                message += (f" (the server at {endpoint} failed, not the request; on the local stack a "
                            "full data disk or no free SeaweedFS volume slots is the usual cause: "
                            "see the server.log under .vton/stack/s3)")
            return StoreError(message)
        return StoreError(f"{url}: {type(exc).__name__}: {exc}")

    def _require_bucket(self, key: str) -> None:
        """Writes to a missing bucket fail on AWS but *create* it on SeaweedFS; make both fail,
        so a typo in a destination URL never scatters shards into a new bucket."""
        if self._bucket_checked:
            return
        with self._errors(key):  # a 404 here is translated to "bucket ... does not exist"
            self.client.head_bucket(Bucket=self.bucket)
        self._bucket_checked = True

    def _bucket_exists(self) -> bool:
        from botocore import exceptions as bx

        try:
            self.client.head_bucket(Bucket=self.bucket)
            return True
        except bx.ClientError as exc:  # only a 404 means "no bucket"; a 403 says nothing about it
            return exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") != 404

    def put_file(self, key: str, path: str | Path, sha256: str | None = None, move: bool = False) -> None:
        from boto3.s3.transfer import TransferConfig

        src = Path(path)
        if not src.is_file():
            raise StoreError(f"cannot store {self.url_for(key)}: source file {src} does not exist")
        extra = {"Metadata": {_SHA_META: sha256}} if sha256 else None
        self._require_bucket(key)
        with self._errors(key):
            if src.stat().st_size < MULTIPART_THRESHOLD:
                # One PUT (upload_file would start a transfer manager and its threads per call). The
                # sha256 the writer already computed is sent as the object's checksum: the server
                # verifies the bytes it received against it, and the client hashes nothing again.
                with open(src, "rb") as body:
                    self.client.put_object(Bucket=self.bucket, Key=self._key(key), Body=body, **(extra or {}),
                                           **_checksum(sha256))
            else:
                config = TransferConfig(multipart_threshold=MULTIPART_THRESHOLD, multipart_chunksize=MULTIPART_CHUNK,
                                        max_concurrency=MULTIPART_CONCURRENCY, use_threads=True)
                self.client.upload_file(str(src), self.bucket, self._key(key), ExtraArgs=extra, Config=config)
        if move:
            src.unlink(missing_ok=True)

    def put_bytes(self, key: str, data: bytes, sha256: str | None = None) -> None:
        kwargs = {"Metadata": {_SHA_META: sha256}, **_checksum(sha256)} if sha256 else {}
        self._require_bucket(key)
        with self._errors(key):
            self.client.put_object(Bucket=self.bucket, Key=self._key(key), Body=data, **kwargs)

    def open_read(self, key: str) -> BinaryIO:
        with self._errors(key):
            resp = self.client.get_object(Bucket=self.bucket, Key=self._key(key))
        return io.BufferedReader(_StreamingReader(resp["Body"], self.url_for(key)), buffer_size=1 * MiB)

    def get_range(self, key: str, start: int, end: int) -> bytes:
        if end <= start:
            return b""
        with self._errors(key):
            resp = self.client.get_object(Bucket=self.bucket, Key=self._key(key), Range=f"bytes={start}-{end - 1}")
            return resp["Body"].read()

    def stat(self, key: str) -> ObjectInfo:
        with self._errors(key):
            head = self.client.head_object(Bucket=self.bucket, Key=self._key(key))
        return ObjectInfo(key, int(head["ContentLength"]), head.get("Metadata", {}).get(_SHA_META))

    def list(self, prefix: str = "") -> list[str]:
        base = f"{self.prefix}/" if self.prefix else ""
        keys = []
        with self._errors():
            for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=base + prefix):
                keys.extend(obj["Key"][len(base):] for obj in page.get("Contents", []))
        return sorted(keys)

    def delete(self, key: str) -> None:
        with self._errors(key):
            self.client.delete_object(Bucket=self.bucket, Key=self._key(key))


# -------------------------------------------------------------------------------------- routing


def open_store(url: str | Path) -> ObjectStore:
    """The store rooted at ``url``: ``s3://bucket[/prefix]``, ``file:///abs/dir`` or a local path."""
    text = str(url)
    parsed = urlparse(text)
    if parsed.scheme == "s3":
        if not parsed.netloc:
            raise ValueError(f"{text}: an s3 URL needs a bucket (s3://bucket/prefix)")
        return S3Store(parsed.netloc, unquote(parsed.path))
    if parsed.scheme == "file":
        if parsed.netloc not in ("", "localhost"):
            raise ValueError(f"{text}: file URLs must be local (file:///abs/path)")
        return FileStore(Path(unquote(parsed.path)))
    if parsed.scheme == "" or (len(parsed.scheme) == 1 and os.name == "nt"):
        return FileStore(Path(text).expanduser())
    raise ValueError(f"{text}: unsupported URL scheme {parsed.scheme!r}; use s3://, file:// or a local path")


def check_reachable(url: str | Path, timeout_s: float = 3.0) -> None:
    """Fail within ``timeout_s`` when ``url`` is on an S3 endpoint that does not accept connections.

    For commands a user waits on (`vton shard verify|build`, `vton submit`'s preflight): botocore
    retries a refused or silent endpoint for ~15 s before its error, which is right for a training
    worker riding out a blip and wrong for a command whose endpoint is simply wrong or down. One TCP
    connect answers that; a file:// URL or AWS itself (no endpoint set) is not probed.
    """
    import socket

    endpoint = s3_endpoint()
    if urlparse(str(url)).scheme != "s3" or not endpoint:
        return
    parsed = urlparse(endpoint if "://" in endpoint else f"http://{endpoint}")
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        with socket.create_connection((parsed.hostname or "", port), timeout=timeout_s):
            return
    except OSError as exc:
        why = f"no answer within {timeout_s:g} s" if isinstance(exc, TimeoutError) else str(exc)
        raise StoreError(f"{url}: cannot reach the S3 endpoint {endpoint} ({why}); is the server running and "
                         "VTON_S3_ENDPOINT / AWS_ENDPOINT_URL_S3 right?") from None


def split_url(url: str | Path) -> tuple[ObjectStore, str]:
    """``.../dir/name`` -> (store rooted at ``.../dir``, ``name``): open one object by its URL."""
    text = str(url)
    parsed = urlparse(text)
    if parsed.scheme == "s3":
        head, _, name = unquote(parsed.path).strip("/").rpartition("/")
        if not parsed.netloc or not name:
            raise ValueError(f"{text}: expected s3://bucket/[prefix/]name")
        return S3Store(parsed.netloc, head), name
    path = Path(unquote(parsed.path)) if parsed.scheme == "file" else Path(text).expanduser()
    if parsed.scheme not in ("", "file"):
        raise ValueError(f"{text}: unsupported URL scheme {parsed.scheme!r}; use s3://, file:// or a local path")
    path = path.resolve()
    return FileStore(path.parent), path.name


# --------------------------------------------------------------------------- webdataset gopen


class _S3Upload(io.RawIOBase):
    """A write-only file object for ``gopen(url, "wb")``: spooled locally, uploaded on close."""

    def __init__(self, url: str) -> None:
        super().__init__()
        self._store, self._key = split_url(url)
        self._tmp = tempfile.NamedTemporaryFile(prefix="vton-s3-upload-", suffix=".part", delete=False)

    def writable(self) -> bool:
        return True

    def write(self, b) -> int:
        return self._tmp.write(b)

    def close(self) -> None:
        if self.closed:
            return
        try:
            self._tmp.close()
            self._store.put_file(self._key, self._tmp.name)
        finally:
            Path(self._tmp.name).unlink(missing_ok=True)
            super().close()


def gopen_s3(url: str, mode: str = "rb", bufsize: int = 8192, **_kw) -> BinaryIO:
    """``webdataset.gopen`` handler for ``s3://`` through boto3 streaming bodies."""
    store, key = split_url(url)
    if mode == "rb":
        return store.open_read(key)
    if mode == "wb":
        return _S3Upload(url)  # type: ignore[return-value]
    raise ValueError(f"{url}: unsupported mode {mode!r} (rb or wb)")


def register_webdataset_s3() -> None:
    """Make ``webdataset`` open ``s3://`` URLs with boto3 (idempotent)."""
    import importlib

    # ``webdataset.gopen`` is shadowed by the function of the same name in the package namespace.
    importlib.import_module("webdataset.gopen").gopen_schemes["s3"] = gopen_s3


register_webdataset_s3()
