"""Per-member digests: each sample carries the sha256 of every member as written at build time.

A shard's own sha256 (the manifest's) catches damage only when the whole object is re-read, which
training never does: it reads one sample's byte range at a time. A flipped byte inside a JPEG
usually still decodes, so without a per-member check a damaged sample is trained on silently.
The digests travel *inside* the sample as one more tar member (``<key>.sha256.json``), so the
stream checks them from the very bytes of its ranged GET (no extra request, no bigger manifest),
and `vton shard verify` names the sample and member that differ. Shards written before this
member existed carry none and are read unchecked.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping

DIGEST_MEMBER = "sha256.json"


def _encode(digests: Mapping[str, str]) -> bytes:
    return json.dumps(dict(sorted(digests.items())), separators=(",", ":")).encode()


def digest_member(members: Mapping[str, bytes]) -> bytes:
    """The ``sha256.json`` payload of a sample: member name -> sha256 hex of its bytes."""
    return _encode({name: hashlib.sha256(data).hexdigest() for name, data in members.items() if name != DIGEST_MEMBER})


def digest_member_size(names: Iterable[str]) -> int:
    """Its size from the member names alone (every digest is 64 hex digits): the writer plans
    shard sizes before it reads any file."""
    return len(_encode({name: "0" * 64 for name in names if name != DIGEST_MEMBER}))


def damaged_members(members: Mapping[str, bytes]) -> list[str] | None:
    """Members whose bytes differ from the recorded digest (a listed member that is absent, or an
    unlisted one, counts too); None when the sample carries no digests (an older shard)."""
    raw = members.get(DIGEST_MEMBER)
    if raw is None:
        return None
    try:
        recorded = json.loads(raw)
        if not isinstance(recorded, dict):
            raise ValueError
    except ValueError:
        return [DIGEST_MEMBER]
    names = (set(members) - {DIGEST_MEMBER}) | set(recorded)
    return sorted(n for n in names
                  if n not in members or recorded.get(n) != hashlib.sha256(members[n]).hexdigest())
