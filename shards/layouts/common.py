"""What every layout reader shares: safe keys, pairs files, member resolution, skip accounting.

Readers only *resolve paths*; they never decode images. The shard writer copies the bytes, and
decoding happens in the loader workers, so a reader over 13k VITON-HD samples stays I/O-light
(one header read per sample, for the original size in ``meta``).
"""

from __future__ import annotations

import functools
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Sequence

from PIL import Image

from shards.sample import REQUIRED_MEMBERS, MissingModalityError, SampleSource

log = logging.getLogger("shards.layouts")

#: Characters kept as they are in a sample key; everything else is escaped as ``~XX``.
_KEY_SAFE = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-")


def safe_key(name: str) -> str:
    """Injective map from a dataset-relative name (extension already removed) to a tar key.

    WebDataset splits a member name at its first '.', and '/' would create folders inside the tar,
    so only ``[A-Za-z0-9_-]`` pass unchanged; any other character becomes ``~`` plus the upper-case
    hex of each of its UTF-8 bytes ('/' -> ``~2F``, '.' -> ``~2E``, '@' -> ``~40``, '=' -> ``~3D``,
    '~' -> ``~7E``). '~' never passes unescaped, so the mapping is reversible (``unsafe_key``) and
    two names never share a key. VITON-HD names (``00000_00``) are unchanged.
    """
    if not name:
        raise ValueError("safe_key: empty sample name")
    out = []
    for ch in name:
        if ch in _KEY_SAFE:
            out.append(ch)
        else:
            out.extend(f"~{b:02X}" for b in ch.encode("utf-8"))
    return "".join(out)


def unsafe_key(key: str) -> str:
    """Inverse of ``safe_key``: the original dataset-relative name of a key."""
    raw = bytearray()
    i = 0
    while i < len(key):
        if key[i] == "~":
            raw.append(int(key[i + 1 : i + 3], 16))
            i += 3
        else:
            raw.extend(key[i].encode("ascii"))
            i += 1
    return raw.decode("utf-8")


def strip_ext(name: str) -> str:
    """``a/b.jpg`` -> ``a/b``; only the last suffix of the last component is removed."""
    head, sep, tail = name.rpartition("/")
    stem = tail.rsplit(".", 1)[0] if "." in tail else tail
    return f"{head}{sep}{stem}"


@dataclass(frozen=True)
class PairsLine:
    """One line of a pairs file: its fields and where it came from (for error messages)."""

    fields: tuple[str, ...]
    path: Path
    line_no: int


def read_pairs(path: Path, columns: int) -> list[PairsLine]:
    """Whitespace-separated lines of exactly ``columns`` fields; blank lines and ``#`` comments skipped."""
    if not path.is_file():
        raise FileNotFoundError(f"pairs file not found: {path}")
    rows = []
    for no, line in enumerate(path.read_text().splitlines(), start=1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        parts = tuple(text.split())
        if len(parts) != columns:
            raise ValueError(f"{path}:{no}: expected {columns} fields, got {len(parts)}: {text!r}")
        rows.append(PairsLine(parts, path, no))
    return rows


class UnsafePathError(ValueError):
    """A pairs-file entry names a file outside the dataset root (``..``, an absolute path, or a
    symlink out of it); the message names the list file and line."""


def confined(root: Path, relative: str, line: PairsLine) -> str:
    """``relative`` (a name from a pairs/list file) if it stays inside ``root``; else
    ``UnsafePathError`` naming the file and line. A list file is data: it must not make the
    builder read (and upload) ``../../etc/shadow``."""
    parts = relative.replace("\\", "/").split("/")
    if relative.startswith(("/", "\\")) or ".." in parts or (len(relative) > 1 and relative[1] == ":"):
        raise UnsafePathError(f"{line.path}:{line.line_no}: {relative!r} leaves the dataset root {root}")
    return relative


def reject(exc: ValueError, strict: bool, stats: "ReadStats", key: str, member: str, where: str) -> None:
    """Raise ``exc`` (strict) or log it and count the sample as skipped (``--skip-bad``)."""
    if strict:
        raise exc
    log.warning("%s (skipped)", exc)
    stats.skipped.append((key, member, where))


def check_inside(root: Path, path: Path, line: PairsLine | None = None) -> Path:
    """``path`` resolved (symlinks followed) must still be under ``root``; returns it unchanged.

    Costs one ``lstat`` per file: directories are resolved once each (a dataset has a handful,
    or one per product folder), and only a file that is itself a symlink is resolved in full.
    """
    base = _resolved(str(root))
    text = str(path)
    head, name = os.path.split(text)
    resolved = os.path.realpath(text) if os.path.islink(text) else os.path.join(_resolved(head), name)
    if resolved != base and not resolved.startswith(base.rstrip(os.sep) + os.sep):
        where = f"{line.path}:{line.line_no}: " if line is not None else ""
        raise UnsafePathError(f"{where}{path} resolves to {resolved}, outside the dataset root {base}")
    return path


@functools.lru_cache(maxsize=65536)
def _resolved(directory: str) -> str:
    return os.path.realpath(directory)


class UnreadableImageError(ValueError):
    """An image file PIL cannot identify (not an image, or a link to something that is not one);
    the message names the sample, the member, the file and the list line."""


#: Members that are images: their headers are read at build time (not their pixels).
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


def usable(root: Path, paths: dict[str, Path], line: PairsLine, strict: bool, stats: "ReadStats", key: str) -> bool:
    """Whether sample ``key`` can be sharded: every resolved file stays under ``root`` (symlinks
    followed), then every image member has an image header PIL identifies (a text file under a
    ``.jpg`` name, or a symlink to one, would otherwise be sharded and fail only in training). A
    sample that fails raises (strict) or is skipped and counted, naming the list line."""
    where = f"{line.path}:{line.line_no}"
    try:
        for path in paths.values():
            check_inside(root, path, line)
    except UnsafePathError as exc:
        reject(exc, strict, stats, key, "path", where)
        return False
    for member, path in paths.items():
        if not member.endswith(IMAGE_SUFFIXES):
            continue
        try:
            with Image.open(path) as im:
                im.size  # noqa: B018 - the header only: PIL decodes no pixels until asked
        except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
            reject(UnreadableImageError(f"{where}: sample '{key}': {member} at {path} is not a readable image "
                                        f"({type(exc).__name__}: {exc})"), strict, stats, key, member, str(path))
            return False
    return True


def first_existing(root: Path, spellings: Sequence[str]) -> Path:
    """The first folder spelling present under ``root``; the first spelling when none is (so the
    error for a missing file names the canonical place to put it)."""
    for name in spellings:
        if (root / name).is_dir():
            return root / name
    return root / spellings[0]


def image_size(path: Path) -> tuple[int, int]:
    """(H, W) from the image header only; PIL does not decode pixel data until asked."""
    with Image.open(path) as im:
        w, h = im.size
    return h, w


@dataclass
class ReadStats:
    """What a reader did: samples yielded, and the ones skipped (non-strict) with the reason."""

    yielded: int = 0
    skipped: list[tuple[str, str, str]] = field(default_factory=list)  # (key, member, path)

    @property
    def skipped_count(self) -> int:
        return len(self.skipped)


class SampleIterator(Iterator[SampleSource]):
    """An iterator over a layout's samples that also exposes ``stats`` (skips are counted there)."""

    def __init__(self, samples: Iterator[SampleSource], stats: ReadStats, label: str) -> None:
        self._samples = samples
        self.stats = stats
        self._label = label
        self._done = False

    def __iter__(self) -> "SampleIterator":
        return self

    def __next__(self) -> SampleSource:
        try:
            sample = next(self._samples)
        except StopIteration:
            if not self._done and self.stats.skipped:
                log.warning("%s: skipped %d unusable sample(s) (missing or unreadable files), yielded %d",
                            self._label, self.stats.skipped_count, self.stats.yielded)
            self._done = True
            raise
        self.stats.yielded += 1
        return sample


def resolve(
    key: str,
    label: str,
    candidates: dict[str, Sequence[Path]],
    optional: dict[str, Sequence[Path]],
    strict: bool,
    stats: ReadStats,
) -> dict[str, Path] | None:
    """Pick the first existing candidate per member.

    A required member with no existing candidate raises ``MissingModalityError`` (strict) naming
    the sample and the expected path, or is logged and counted in ``stats`` and the sample is
    skipped (returns None). Optional members are simply left out when absent.
    """
    paths: dict[str, Path] = {}
    for member, options in candidates.items():
        found = next((p for p in options if p.is_file()), None)
        if found is None:
            expected = " or ".join(str(p) for p in options)
            msg = f"{label}: sample '{key}' is missing {member}: expected {expected}"
            if strict:
                raise MissingModalityError(msg)
            log.warning("%s (skipped)", msg)
            stats.skipped.append((key, member, str(options[0])))
            return None
        paths[member] = found
    for member, options in optional.items():
        found = next((p for p in options if p.is_file()), None)
        if found is not None:
            paths[member] = found
    missing = [m for m in REQUIRED_MEMBERS if m != "meta.json" and m not in paths]
    assert not missing, f"layout resolved no candidates for {missing}"
    return paths


def check_unique(key: str, seen: dict[str, PairsLine], line: PairsLine) -> None:
    """One sample per person image: a second line for the same person is a data error."""
    if key in seen:
        first = seen[key]
        raise ValueError(
            f"{line.path}:{line.line_no}: person already listed at line {first.line_no} "
            f"(sample '{key}'); a layout yields one sample per person image"
        )
    seen[key] = line
