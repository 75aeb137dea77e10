"""Dataset on disk -> WebDataset tar shards in an object store, plus ``manifest.json``; and verify.

``build_shards(layout, src, split, dest_url, shard_size_bytes="256MB", workers=None)``:

1. Samples come from ``shards.layouts.read_layout`` (order = the layout's order).
2. They are assigned to shards *before* any tar is written: a shard takes samples until the next
   one would push it past ``shard_size_bytes`` (a sample bigger than the limit gets a shard of
   its own). Sizes are exact tar sizes computed from file sizes, so the assignment is
   deterministic and shards can be written in parallel processes.
3. Each shard is written with ``webdataset.TarWriter``: members are exactly the contract's member
   names under the sample key, bytes copied unchanged from the source files, ``meta.json`` from
   ``SampleSource.meta`` (sorted keys, compact separators), and last ``sha256.json``, the digest
   of every other member (``shards.digests``: the stream checks it on every read), fixed mtime 0,
   uid/gid 0, owner "bigdata", mode 0444 — so re-runs produce byte-identical tars.
   Writer processes produce finished temp tars while upload threads store the previous ones
   (``uploads`` at a time), so writing and uploading overlap (``_run_jobs``).
4. Shard objects are named ``{split}-{index:06d}-{sha256[:12]}.tar``. Content-addressed names mean
   a re-run never overwrites an object an existing manifest points to: until the new
   ``manifest.json`` lands (written last, atomically), the old shard set stays fully readable.
5. Idempotency: a shard whose object already exists with the same size and sha256 (S3 object
   metadata; for local stores the file is hashed; an object without recorded checksum is trusted
   only if the existing manifest lists it with that sha256) is not uploaded again. The manifest is
   not rewritten either when nothing changed. ``Manifest.build_stats`` reports uploaded vs skipped.

``verify_shards(manifest_url)`` re-reads every shard, checks bytes and sha256 against the manifest,
checks the per-sample index, rejects hostile member names, checks every member against its
recorded digest (naming sample and member) and decodes every sample with the same decoder as the stream. It returns a ``VerifyReport``; it never raises for bad data.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import sys
import tarfile
import tempfile
import time
from collections import Counter
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import BinaryIO, Iterable, Sequence

from webdataset import TarWriter

from shards.digests import DIGEST_MEMBER, damaged_members, digest_member, digest_member_size
from shards.manifest import Manifest, ManifestError, ShardRecord
from shards.sample import SampleSource
from shards.store import FileStore, ObjectNotFoundError, ObjectStore, StoreError, open_store

log = logging.getLogger("shards.writer")

DEFAULT_SHARD_SIZE = "256MB"
#: Concurrent shard uploads: enough to keep a remote store busy while the writers produce more.
DEFAULT_UPLOADS = 4
#: Fixed tar header fields: what makes shard bytes reproducible.
TAR_MTIME = 0
TAR_USER = TAR_GROUP = "bigdata"
TAR_MODE = 0o444
TAR_FORMAT = "PAX_FORMAT"  # plain ustar headers for short names; pax only for keys over ~80 chars
_SPLIT = re.compile(r"^[A-Za-z0-9_-]+$")
_UNITS = {"": 1, "B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12,
          "KIB": 2**10, "MIB": 2**20, "GIB": 2**30, "TIB": 2**40, "K": 10**3, "M": 10**6, "G": 10**9}


def parse_size(value: str | int | float) -> int:
    """``"256MB"`` -> 256_000_000, ``"1GiB"`` -> 1_073_741_824, ``4096`` -> 4096 (decimal vs binary units)."""
    if isinstance(value, bool):
        raise ValueError(f"invalid size {value!r}")
    if isinstance(value, (int, float)):
        size = int(value)
    else:
        m = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([A-Za-z]*)\s*", str(value))
        unit = m.group(2).upper() if m else None
        if m is None or unit not in _UNITS:
            raise ValueError(f"invalid size {value!r}: expected a number with an optional unit "
                             f"(B, KB, MB, GB, KiB, MiB, GiB), e.g. 256MB or 1GiB")
        size = int(float(m.group(1)) * _UNITS[unit])
    if size <= 0:
        raise ValueError(f"invalid size {value!r}: must be positive")
    return size


# ------------------------------------------------------------------------------ planning shards


@dataclass(frozen=True)
class PlannedSample:
    """A sample as the writer needs it: key, member -> source file, serialised meta."""

    key: str
    paths: tuple[tuple[str, str], ...]  # (member, absolute path), sorted by member
    meta: bytes
    tar_bytes: int  # exact size of its members in the tar (headers + padded data)

    @property
    def members(self) -> tuple[str, ...]:
        return tuple(member for member, _ in self.paths)


def serialise_meta(meta: dict) -> bytes:
    try:
        return json.dumps(meta, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    except (TypeError, ValueError) as exc:
        raise ValueError(f"meta is not JSON-serialisable: {exc}") from None


def _tarinfo(name: str, size: int) -> tarfile.TarInfo:
    # Mirrors what webdataset.TarWriter.write builds, so sizes computed here are the real ones.
    ti = tarfile.TarInfo(name)
    ti.size, ti.mtime, ti.mode, ti.uname, ti.gname = size, TAR_MTIME, TAR_MODE, TAR_USER, TAR_GROUP
    return ti


def _member_tar_bytes(name: str, size: int) -> int:
    if name.isascii() and len(name) <= tarfile.LENGTH_NAME and size < 8**11:
        header = tarfile.BLOCKSIZE  # fits a plain ustar header: no pax extension is written
    else:
        header = len(_tarinfo(name, size).tobuf(getattr(tarfile, TAR_FORMAT), "utf-8", "surrogateescape"))
    return header + -(-size // tarfile.BLOCKSIZE) * tarfile.BLOCKSIZE


def plan_sample(src: SampleSource) -> PlannedSample:
    """Resolve sizes now, so a missing or unreadable file fails before any shard is written."""
    if not src.key or "." in src.key or "/" in src.key:
        raise ValueError(f"sample key {src.key!r} cannot name tar members ('.' and '/' are not allowed)")
    meta = serialise_meta(src.meta)
    total = _member_tar_bytes(f"{src.key}.meta.json", len(meta))
    paths = []
    for member, path in sorted(src.paths.items()):
        if member in ("meta.json", DIGEST_MEMBER):
            raise ValueError(f"sample '{src.key}': meta.json comes from SampleSource.meta, not a file ({path})")
        try:
            size = os.stat(path).st_size
        except OSError as exc:
            raise FileNotFoundError(f"sample '{src.key}': cannot read {member} at {path}: {exc}") from None
        total += _member_tar_bytes(f"{src.key}.{member}", size)
        paths.append((member, os.path.abspath(path)))
    names = ("meta.json", *(member for member, _ in paths))
    total += _member_tar_bytes(f"{src.key}.{DIGEST_MEMBER}", digest_member_size(names))
    return PlannedSample(src.key, tuple(paths), meta, total)


def assign_shards(samples: Sequence[PlannedSample], shard_size: int) -> list[list[PlannedSample]]:
    """Consecutive runs of samples, each run as large as fits in ``shard_size`` (at least one)."""
    shards: list[list[PlannedSample]] = []
    current: list[PlannedSample] = []
    used = 0
    for s in samples:
        if current and used + s.tar_bytes > shard_size:
            shards.append(current)
            current, used = [], 0
        current.append(s)
        used += s.tar_bytes
    if current:
        shards.append(current)
    return shards


# ------------------------------------------------------------------------------ writing shards


class _HashingWriter:
    """File wrapper that hashes and counts what the tar writer emits."""

    def __init__(self, f: BinaryIO) -> None:
        self.f, self.sha, self.count = f, hashlib.sha256(), 0

    def write(self, data: bytes) -> int:
        self.sha.update(data)
        self.count += len(data)
        return self.f.write(data)

    def flush(self) -> None:
        self.f.flush()


def write_tar(samples: Iterable[tuple[str, dict[str, bytes]]], f: BinaryIO) -> tuple[str, int, list[str], list[int]]:
    """Write samples ``(key, {member: bytes})`` as a WebDataset tar to ``f``.

    Returns (sha256, bytes, keys, offsets) for the manifest. Also how tests craft shards with
    damaged members: the bytes are written as given.
    """
    out = _HashingWriter(f)
    keys, offsets = [], []
    tw = TarWriter(out, user=TAR_USER, group=TAR_GROUP, mode=TAR_MODE, encoder=False, mtime=TAR_MTIME,
                   format=TAR_FORMAT)
    for key, members in samples:
        offsets.append(tw.tarstream.offset)
        keys.append(key)
        tw.write({"__key__": key, **members})
    offsets.append(tw.tarstream.offset)
    tw.close()
    out.flush()
    return out.sha.hexdigest(), out.count, keys, offsets


def _read_members(sample: PlannedSample) -> dict[str, bytes]:
    members = {"meta.json": sample.meta}
    for member, path in sample.paths:
        try:
            members[member] = Path(path).read_bytes()
        except OSError as exc:
            raise OSError(f"sample '{sample.key}': cannot read {member} from {path}: {exc}") from None
    members[DIGEST_MEMBER] = digest_member(members)  # last: what the stream and verify check against
    return members


@dataclass(frozen=True)
class _ShardJob:
    index: int
    split: str
    samples: tuple[PlannedSample, ...]
    tmp_dir: str


@dataclass(frozen=True)
class _WrittenShard:
    record: ShardRecord
    tmp_path: str


@dataclass(frozen=True)
class _ShardResult:
    record: ShardRecord
    uploaded: bool


def shard_name(split: str, index: int, sha256: str) -> str:
    return f"{split}-{index:06d}-{sha256[:12]}.tar"


def _already_stored(store: ObjectStore, name: str, size: int, sha: str, known_sha: dict[str, str]) -> bool:
    try:
        info = store.stat(name)
    except ObjectNotFoundError:
        return False
    if info.size != size:
        return False
    if info.sha256 is not None:
        return info.sha256 == sha
    return known_sha.get(name) == sha


def _write_shard(job: _ShardJob) -> _WrittenShard:
    """Build one shard as a temp file (named by its content only once written)."""
    fd, tmp = tempfile.mkstemp(prefix=f".{job.split}-{job.index:06d}.", suffix=".tar.part", dir=job.tmp_dir)
    try:
        with os.fdopen(fd, "wb") as f:
            sha, size, keys, offsets = write_tar(((s.key, _read_members(s)) for s in job.samples), f)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    name = shard_name(job.split, job.index, sha)
    return _WrittenShard(ShardRecord(name=name, samples=len(keys), bytes=size, sha256=sha, keys=tuple(keys),
                                     offsets=tuple(offsets)), tmp)


def _store_shard(store: ObjectStore, written: _WrittenShard, known_sha: dict[str, str]) -> _ShardResult:
    """Upload a written shard unless an identical object is there; the temp file goes either way."""
    record = written.record
    try:
        if _already_stored(store, record.name, record.bytes, record.sha256, known_sha):
            return _ShardResult(record, uploaded=False)
        store.put_file(record.name, written.tmp_path, sha256=record.sha256, move=True)
        return _ShardResult(record, uploaded=True)
    finally:
        Path(written.tmp_path).unlink(missing_ok=True)


@dataclass
class BuildStats:
    """What one ``build_shards`` call did (not part of the manifest JSON)."""

    shards: int = 0
    uploaded: int = 0
    skipped: int = 0
    bytes_uploaded: int = 0
    samples: int = 0
    skipped_sources: int = 0  # samples the layout reader skipped (strict=False)
    manifest_written: bool = False
    manifest_url: str = ""
    stale: list[str] = field(default_factory=list)  # objects of the previous manifest no longer listed
    seconds: float = 0.0


def _progress(enabled: bool | None, total: int):
    """The build's progress (``shards.progress``: a bar on a terminal, a line per 10% elsewhere);
    ``enabled`` None: only on a terminal (a library call stays quiet)."""
    if not (sys.stderr.isatty() if enabled is None else enabled):
        return None
    from shards.progress import progress

    return progress(total, "build", unit="shards")


def build_shards(
    layout: str,
    src: str | Path,
    split: str,
    dest_url: str,
    shard_size_bytes: int | str = DEFAULT_SHARD_SIZE,
    workers: int | None = None,
    progress: bool | None = None,
    strict: bool = True,
    layout_options: dict | None = None,
    uploads: int = DEFAULT_UPLOADS,
) -> Manifest:
    """Shard ``split`` of the dataset at ``src`` (read as ``layout``) into ``dest_url``.

    Args:
        layout: a ``shards.layouts.LAYOUTS`` name ("viton_hd", "viton", "mpv").
        src: dataset root on local disk.
        split: "train", "test", ... ([A-Za-z0-9_-]+; also the shard name prefix).
        dest_url: ``s3://bucket/prefix``, ``file:///abs/dir`` or a local directory.
        shard_size_bytes: target shard size, an int or a string like "256MB" / "1GiB".
        workers: writer processes (default: CPU count, at most one per shard); 1 = a thread.
        uploads: concurrent uploads of finished shards, overlapping with the writing of the next.
        progress: progress on stderr (a bar on a terminal, a line per 10% elsewhere); None: only
            when stderr is a terminal (`vton shard build` passes True).
        strict: a sample missing a required modality raises (True) or is skipped and counted.
        layout_options: the reader's own options (``mpv_triplets``: ``subset``; ``dresscode``:
            ``categories``), recorded in the manifest's ``source``.

    Returns the manifest written (or found unchanged) at ``dest_url``; its ``build_stats``
    (``BuildStats``) says how many shards were uploaded vs skipped.
    """
    from shards.layouts import read_layout

    started = time.monotonic()
    if not _SPLIT.match(split):
        raise ValueError(f"invalid split {split!r}: use letters, digits, '_' or '-'")
    shard_size = parse_size(shard_size_bytes)
    src_path = Path(src).expanduser().resolve()
    if not src_path.is_dir():
        raise FileNotFoundError(f"dataset root {src_path} does not exist or is not a directory")
    store = open_store(dest_url)
    previous = _load_previous(store)

    reader = read_layout(layout, src_path, split, strict=strict, options=layout_options)
    planned, seen = [], set()
    for sample in reader:
        if sample.key in seen:
            raise ValueError(f"{layout} {src_path} [{split}]: sample key '{sample.key}' appears twice")
        seen.add(sample.key)
        planned.append(plan_sample(sample))
    stats = BuildStats(skipped_sources=getattr(getattr(reader, "stats", None), "skipped_count", 0))
    if not planned:
        raise ValueError(f"{layout} {src_path} [{split}]: no samples to shard")
    groups = assign_shards(planned, shard_size)

    known = {s.name: s.sha256 for s in previous.shards} if previous else {}
    is_local = isinstance(store, FileStore)
    if is_local:
        store.root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".vton-shards-", dir=str(store.root) if is_local else None) as tmp:
        jobs = [_ShardJob(i, split, tuple(g), tmp) for i, g in enumerate(groups)]
        results = _run_jobs(jobs, store, known, workers, uploads, progress)

    records = [r.record for r in results]
    stats.shards = len(records)
    stats.samples = sum(r.samples for r in records)
    stats.uploaded = sum(r.uploaded for r in results)
    stats.skipped = stats.shards - stats.uploaded
    stats.bytes_uploaded = sum(r.record.bytes for r in results if r.uploaded)
    source = {"src": str(src_path), "strict": strict, "shard_size_bytes": shard_size,
              "skipped_sources": stats.skipped_sources}
    if layout_options:
        source["layout_options"] = {k: (str(v) if isinstance(v, Path) else v) for k, v in layout_options.items()}
    members = dict(sorted(Counter(m for p in planned for m in ("meta.json", DIGEST_MEMBER, *p.members)).items()))
    manifest = Manifest(layout=layout, split=split, shards=records, source=source, members=members)
    if manifest.same_content(previous):
        manifest = previous  # nothing changed: keep its `created`, do not rewrite it
    else:
        stats.manifest_written = True
        manifest.save(store)
    listed = {r.name for r in records}
    stats.stale = sorted(s.name for s in (previous.shards if previous else []) if s.name not in listed)
    stats.manifest_url = store.url_for("manifest.json")
    stats.seconds = time.monotonic() - started
    manifest.base_url = store.root_url
    manifest.build_stats = stats
    log.info("%s: %d shards (%d uploaded, %d already stored), %d samples in %.1fs", stats.manifest_url,
             stats.shards, stats.uploaded, stats.skipped, stats.samples, stats.seconds)
    return manifest


def _load_previous(store: ObjectStore) -> Manifest | None:
    try:
        return Manifest.load_if_exists(store)
    except ManifestError as exc:
        # An unreadable old manifest must not block a rebuild; it is replaced at the end.
        log.warning("ignoring the existing manifest: %s", exc)
        return None


def _mp_context():
    """fork where the platform has it: a spawned worker re-imports webdataset, which imports torch
    (3-6 s per worker on a small machine, longer than writing a 256MB shard). The writer processes
    are forked at the first submit, before any upload thread exists (``_run_jobs``), so fork is
    safe; elsewhere spawn."""
    import multiprocessing

    return get_context("fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn")


def _failure(job: _ShardJob, exc: BaseException) -> RuntimeError:
    return RuntimeError(f"shard {job.index} ({len(job.samples)} samples from '{job.samples[0].key}'): {exc}")


def _run_jobs(jobs: list[_ShardJob], store: ObjectStore, known_sha: dict[str, str], workers: int | None,
              uploads: int, progress: bool | None) -> list[_ShardResult]:
    """Write shards in ``workers`` processes while ``uploads`` threads store the finished ones.

    Writing (CPU and local disk) and uploading (network and the server) overlap, and uploads run
    concurrently, so an S3 build is not the sum of the two. At most ``2 * uploads`` written shards
    wait for upload at any time (plus the ``2 * workers`` being written or queued): a slow store
    holds the writers back instead of filling the temp disk with the whole dataset.
    """
    n = max(1, min(len(jobs), workers if workers is not None else (os.cpu_count() or 1)))
    bar = _progress(progress, len(jobs))
    results: dict[int, _ShardResult] = {}
    todo = iter(jobs)
    writing: dict[Future, _ShardJob] = {}
    storing: dict[Future, _ShardJob] = {}
    writer = (ProcessPoolExecutor(max_workers=n, mp_context=_mp_context()) if n > 1
              else ThreadPoolExecutor(max_workers=1, thread_name_prefix="shard-writer"))
    uploader = ThreadPoolExecutor(max_workers=uploads, thread_name_prefix="shard-upload")

    def refill() -> None:
        # One job queued behind each running one, so a writer never waits for the parent's
        # round trip before starting its next shard.
        while len(writing) < 2 * n and len(storing) < 2 * uploads:
            job = next(todo, None)
            if job is None:
                return
            writing[writer.submit(_write_shard, job)] = job

    try:
        refill()
        while writing or storing:
            done, _ = wait([*writing, *storing], return_when=FIRST_COMPLETED)
            for fut in done:
                if fut in writing:
                    job = writing.pop(fut)
                    try:
                        written = fut.result()
                    except Exception as exc:
                        raise _failure(job, exc) from exc
                    storing[uploader.submit(_store_shard, store, written, known_sha)] = job
                else:
                    job = storing.pop(fut)
                    try:
                        results[job.index] = fut.result()
                    except Exception as exc:
                        raise _failure(job, exc) from exc
                    if bar is not None:
                        bar.update(1)
            refill()
    finally:
        for fut in (*writing, *storing):
            fut.cancel()
        uploader.shutdown(wait=True, cancel_futures=True)
        writer.shutdown(wait=True, cancel_futures=True)
        if bar is not None:
            bar.close()
    return [results[i] for i in range(len(jobs))]


# ------------------------------------------------------------------------------------- verify


@dataclass(frozen=True)
class VerifyFailure:
    shard: str
    key: str | None  # None when the problem is the shard as a whole
    problem: str

    def __str__(self) -> str:
        return f"{self.shard}" + (f" [{self.key}]" if self.key else "") + f": {self.problem}"


@dataclass
class VerifyReport:
    """Outcome of ``verify_shards``; ``ok`` is True only when nothing failed."""

    manifest_url: str
    shards: int = 0
    samples: int = 0
    bytes: int = 0
    failures: list[VerifyFailure] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.failures

    def summary(self) -> str:
        head = (f"{self.manifest_url}: {self.shards} shards, {self.samples} samples, {self.bytes} bytes "
                f"checked in {self.seconds:.1f}s: ")
        if self.ok:
            return head + "OK"
        lines = [head + f"{len(self.failures)} failure(s)"]
        lines += [f"  {f}" for f in self.failures[:50]]
        if len(self.failures) > 50:
            lines.append(f"  ... and {len(self.failures) - 50} more")
        return "\n".join(lines)


def verify_shards(manifest_url: str, show_progress: bool = False) -> VerifyReport:
    """Re-read every shard of the manifest at ``manifest_url``; see the module docstring."""
    from shards.progress import progress

    started = time.monotonic()
    manifest = Manifest.load(manifest_url)
    store = manifest.store()
    report = VerifyReport(manifest_url=store.url_for("manifest.json"))
    bar = progress(len(manifest.shards), "verify", unit="shards") if show_progress else None
    try:
        for rec in manifest.shards:
            _verify_shard(store, rec, report)
            if bar is not None:
                bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    report.seconds = time.monotonic() - started
    return report


def _verify_shard(store: ObjectStore, rec: ShardRecord, report: VerifyReport) -> None:
    """One shard into ``report``: its samples scanned and decoded, then its size, sha256, keys and
    offsets against the manifest's record ``rec``."""
    from shards.decode import BadSampleError, decode_sample
    from shards.tario import CorruptSampleError, UnsafeMemberError, scan_shard

    report.shards += 1
    fails = report.failures
    url = store.url_for(rec.name)
    try:
        f = store.open_read(rec.name)
    except StoreError as exc:
        fails.append(VerifyFailure(rec.name, None, f"cannot open: {exc}"))
        return
    hashing = _HashingReader(f)
    seen: list[tuple[str, int]] = []
    parsed = False
    try:
        for sample in scan_shard(hashing, url):
            seen.append((sample.key, sample.offset))
            report.samples += 1
            damaged = damaged_members(sample.members)
            if damaged:
                fails.append(VerifyFailure(rec.name, sample.key, "member(s) " + ", ".join(damaged) +
                                           ": sha256 differs from the one recorded at build time"))
            try:
                decode_sample(sample.members, sample.key)
            except BadSampleError as exc:
                fails.append(VerifyFailure(rec.name, sample.key, f"{exc.reason}: {exc.detail}"))
        parsed = True
    except UnsafeMemberError as exc:
        fails.append(VerifyFailure(rec.name, None, f"unsafe member: {exc}"))
    except CorruptSampleError as exc:
        fails.append(VerifyFailure(rec.name, exc.key, str(exc)))
    except StoreError as exc:
        fails.append(VerifyFailure(rec.name, None, str(exc)))
    try:
        hashing.drain()  # the rest of the object, so size and sha256 are checked even after a failure
    except StoreError as exc:
        fails.append(VerifyFailure(rec.name, None, str(exc)))
    finally:
        f.close()
    report.bytes += hashing.count
    if hashing.complete:
        if hashing.count != rec.bytes:
            fails.append(VerifyFailure(rec.name, None, f"size {hashing.count} bytes, manifest says {rec.bytes}"))
        elif hashing.sha.hexdigest() != rec.sha256:
            fails.append(VerifyFailure(rec.name, None, "sha256 differs from the manifest"))
    if parsed:
        keys = tuple(k for k, _ in seen)
        if keys != rec.keys:
            extra = sorted(set(keys) - set(rec.keys))[:5]
            lost = sorted(set(rec.keys) - set(keys))[:5]
            fails.append(VerifyFailure(rec.name, None, f"sample keys differ from the manifest "
                                       f"(unexpected {extra}, missing {lost})"))
        elif tuple(o for _, o in seen) != rec.offsets[:-1]:
            fails.append(VerifyFailure(rec.name, None, "sample offsets differ from the manifest index"))


class _HashingReader:
    """Hashes what tarfile reads; ``drain`` reads the rest (end-of-archive padding) too."""

    def __init__(self, f: BinaryIO) -> None:
        self.f, self.sha, self.count, self.complete = f, hashlib.sha256(), 0, False

    def read(self, size: int = -1) -> bytes:
        data = self.f.read(size)
        self.sha.update(data)
        self.count += len(data)
        return data

    def drain(self) -> None:
        while self.read(4 << 20):
            pass
        self.complete = True

