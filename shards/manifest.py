"""``manifest.json``: what a shard set holds, written last by the writer, read first by everyone else.

Why per-sample ``keys`` and ``offsets`` are recorded: they cost ~25 bytes a sample in JSON, and they
let the stream (a) plan an epoch exactly (equal batches on every rank without opening a shard) and
(b) fetch any contiguous run of samples with one ranged GET, which is what makes resuming at an
arbitrary (epoch, step) cheap. ``offsets[i]`` is the byte offset of sample ``i``'s first tar header;
``offsets[-1]`` is where the last sample's members end (the tar's end-of-archive blocks follow).

Schema (version 2)::

    {"schema_version": 2, "layout": "viton_hd", "split": "train", "created": "<ISO 8601 UTC>",
     "source": {...free-form provenance...},
     "members": {"cloth.jpg": 3, "meta.json": 3, ...},   (how many samples carry each member)
     "shards": [{"name": "train-000000-<sha12>.tar", "samples": 3, "bytes": 30720,
                 "sha256": "<hex>", "keys": [...], "offsets": [...]}],
     "totals": {"shards": 1, "samples": 3, "bytes": 30720}}

Version 1 (shards written before two-person samples) has no ``members``; it still reads
(``members`` is None then: unknown, as when a version-2 manifest omits it). ``members`` lets a consumer know before streaming whether the
set carries, e.g., a second person per sample (``target.person.jpg``) or a rendered pose image
for every sample or only some.
Shard names are relative to the manifest's directory.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from shards.store import ObjectNotFoundError, ObjectStore, open_store, split_url

SCHEMA_VERSION = 2
SUPPORTED_SCHEMA_VERSIONS = (1, 2)
MANIFEST_NAME = "manifest.json"
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_SHARD_NAME = re.compile(r"^[A-Za-z0-9_.-]+\.tar$")


class ManifestError(ValueError):
    """A manifest cannot be used; the message names where it came from and the field at fault."""


@dataclass(frozen=True)
class ShardRecord:
    """One tar shard: its object name, sample count, size, checksum and per-sample index."""

    name: str
    samples: int
    bytes: int
    sha256: str
    keys: tuple[str, ...]
    offsets: tuple[int, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "samples": self.samples, "bytes": self.bytes, "sha256": self.sha256,
                "keys": list(self.keys), "offsets": list(self.offsets)}

    def sample_span(self, i: int) -> tuple[int, int]:
        """Byte range ``[start, end)`` of sample ``i``'s members."""
        return self.offsets[i], self.offsets[i + 1]


@dataclass
class Manifest:
    """A shard set. ``base_url`` (where it was loaded from) and ``build_stats`` are not serialised."""

    layout: str
    split: str
    shards: list[ShardRecord]
    created: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds"))
    source: dict[str, Any] = field(default_factory=dict)
    schema_version: int = SCHEMA_VERSION
    members: dict[str, int] | None = None  # None: a version-1 manifest, which did not record them
    base_url: str | None = field(default=None, compare=False, repr=False)
    #: What the ``build_shards`` call that returned this manifest did (``shards.writer.BuildStats``).
    build_stats: Any = field(default=None, compare=False, repr=False)

    # ------------------------------------------------------------------ totals and lookups
    @property
    def num_samples(self) -> int:
        return sum(s.samples for s in self.shards)

    @property
    def num_bytes(self) -> int:
        return sum(s.bytes for s in self.shards)

    @property
    def totals(self) -> dict[str, int]:
        return {"shards": len(self.shards), "samples": self.num_samples, "bytes": self.num_bytes}

    def shard_url(self, shard: ShardRecord | str) -> str:
        name = shard.name if isinstance(shard, ShardRecord) else shard
        if self.base_url is None:
            raise ManifestError("manifest has no base_url (it was not loaded from a store)")
        return f"{self.base_url.rstrip('/')}/{name}"

    def store(self) -> ObjectStore:
        """The store holding this manifest's shards."""
        if self.base_url is None:
            raise ManifestError("manifest has no base_url (it was not loaded from a store)")
        return open_store(self.base_url)

    def same_content(self, other: "Manifest | None") -> bool:
        """True when ``other`` describes the same shards of the same data (``created`` ignored)."""
        return (other is not None and self.layout == other.layout and self.split == other.split
                and self.shards == other.shards and self.source == other.source
                and self.schema_version == other.schema_version and self.members == other.members)

    # ------------------------------------------------------------------ JSON
    def to_dict(self) -> dict[str, Any]:
        doc = {"schema_version": self.schema_version, "layout": self.layout, "split": self.split,
               "created": self.created, "source": self.source}
        if self.members is not None:
            doc["members"] = dict(sorted(self.members.items()))
        return {**doc, "shards": [s.to_dict() for s in self.shards], "totals": self.totals}

    def to_json(self) -> str:
        """Indented at the top level, one line per shard: readable, and small for 100k+ samples."""
        doc = self.to_dict()
        shards = doc.pop("shards")
        totals = doc.pop("totals")
        lines = [f" {json.dumps(k)}: {json.dumps(v, separators=(',', ':'))}," for k, v in doc.items()]
        body = ",\n".join(f"  {json.dumps(s, separators=(',', ':'))}" for s in shards)
        lines.append(f' "shards": [\n{body}\n ],')
        lines.append(f' "totals": {json.dumps(totals)}')
        return "{\n" + "\n".join(lines) + "\n}\n"

    @classmethod
    def from_json(cls, text: str | bytes, where: str = "<manifest>") -> "Manifest":
        try:
            doc = json.loads(text)
        except (ValueError, UnicodeDecodeError) as exc:
            raise ManifestError(f"{where}: not valid JSON: {exc}") from None
        return cls.from_dict(doc, where)

    @classmethod
    def from_dict(cls, doc: Any, where: str = "<manifest>") -> "Manifest":
        if not isinstance(doc, dict):
            raise ManifestError(f"{where}: expected a JSON object, got {type(doc).__name__}")
        version = _field(doc, "schema_version", int, where)
        if version not in SUPPORTED_SCHEMA_VERSIONS:
            raise ManifestError(f"{where}: unknown schema_version {version}; this vton-train reads "
                                f"{list(SUPPORTED_SCHEMA_VERSIONS)} (upgrade vton-train or rebuild the shards)")
        layout = _field(doc, "layout", str, where)
        split = _field(doc, "split", str, where)
        created = _field(doc, "created", str, where)
        source = doc.get("source", {})
        if not isinstance(source, dict):
            raise ManifestError(f"{where}: field 'source' must be an object")
        raw_shards = _field(doc, "shards", list, where)
        shards = [_shard(s, f"{where}: shards[{i}]") for i, s in enumerate(raw_shards)]
        names = [s.name for s in shards]
        if len(set(names)) != len(names):
            dup = sorted({n for n in names if names.count(n) > 1})
            raise ManifestError(f"{where}: duplicate shard names {dup}")
        members = None
        if doc.get("members") is not None:  # version 1 never has it; a hand-made version 2 may omit it
            raw_members = _field(doc, "members", dict, where)
            if not all(isinstance(m, str) and isinstance(c, int) and not isinstance(c, bool) and c >= 0
                       for m, c in raw_members.items()):
                raise ManifestError(f"{where}: field 'members' must map member names to sample counts")
            members = dict(raw_members)
        manifest = cls(layout=layout, split=split, shards=shards, created=created, source=source,
                       schema_version=version, members=members)
        totals = doc.get("totals")
        if totals is not None:
            if not isinstance(totals, dict):
                raise ManifestError(f"{where}: field 'totals' must be an object")
            for name, value in manifest.totals.items():
                if name in totals and totals[name] != value:
                    raise ManifestError(f"{where}: totals.{name} is {totals[name]} but the shards add up "
                                        f"to {value}")
        return manifest

    # ------------------------------------------------------------------ stores
    @classmethod
    def load(cls, url: str) -> "Manifest":
        """Load from ``.../manifest.json`` or from the directory URL that holds it."""
        text = str(url)
        if not text.rstrip("/").endswith(".json"):
            text = text.rstrip("/") + "/" + MANIFEST_NAME
        store, name = split_url(text)
        try:
            data = store.get_bytes(name)
        except ObjectNotFoundError:
            raise ManifestError(f"{store.url_for(name)}: no manifest there (build the shards first "
                                "with `vton shard build`)") from None
        manifest = cls.from_json(data, store.url_for(name))
        manifest.base_url = store.root_url
        return manifest

    @classmethod
    def load_if_exists(cls, store: ObjectStore) -> "Manifest | None":
        """The manifest at the root of ``store``, or None when there is none yet."""
        try:
            data = store.get_bytes(MANIFEST_NAME)
        except ObjectNotFoundError:
            return None
        manifest = cls.from_json(data, store.url_for(MANIFEST_NAME))
        manifest.base_url = store.root_url
        return manifest

    def save(self, store: ObjectStore) -> str:
        """Write ``manifest.json`` at the root of ``store``; returns its URL."""
        store.put_bytes(MANIFEST_NAME, self.to_json().encode())
        self.base_url = store.root_url
        return store.url_for(MANIFEST_NAME)


def _field(doc: dict, name: str, kind: type, where: str) -> Any:
    if name not in doc:
        raise ManifestError(f"{where}: missing field '{name}'")
    value = doc[name]
    if kind is int and isinstance(value, bool) or not isinstance(value, kind):
        raise ManifestError(f"{where}: field '{name}' must be {kind.__name__}, got {type(value).__name__}")
    return value


def _shard(doc: Any, where: str) -> ShardRecord:
    if not isinstance(doc, dict):
        raise ManifestError(f"{where}: expected an object")
    name = _field(doc, "name", str, where)
    if not _SHARD_NAME.match(name) or ".." in name:
        raise ManifestError(f"{where}: shard name {name!r} must be a plain '*.tar' file name")
    where = f"{where} ({name})"
    samples = _field(doc, "samples", int, where)
    size = _field(doc, "bytes", int, where)
    sha = _field(doc, "sha256", str, where)
    if not _SHA256.match(sha):
        raise ManifestError(f"{where}: sha256 must be 64 lower-case hex digits")
    keys = tuple(_field(doc, "keys", list, where))
    offsets = tuple(_field(doc, "offsets", list, where))
    if samples < 1 or size < 1:
        raise ManifestError(f"{where}: samples and bytes must be positive")
    if len(keys) != samples or not all(isinstance(k, str) and k for k in keys):
        raise ManifestError(f"{where}: 'keys' must list {samples} non-empty sample keys")
    if (len(offsets) != samples + 1 or not all(isinstance(o, int) and not isinstance(o, bool) for o in offsets)
            or offsets[0] != 0 or any(a >= b for a, b in zip(offsets, offsets[1:])) or offsets[-1] > size):
        raise ManifestError(f"{where}: 'offsets' must be {samples + 1} increasing byte offsets from 0 "
                            f"to at most {size}")
    return ShardRecord(name=name, samples=samples, bytes=size, sha256=sha, keys=keys, offsets=offsets)
