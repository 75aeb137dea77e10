"""Readers of try-on datasets as they lie on disk, each yielding ``shards.sample.SampleSource``.

A reader resolves, per sample, which file backs each member of the shard contract and fills
``meta`` with the same keys for every layout, so the writer and the families never learn where a
sample came from::

    layout, split, original_size [H, W], pair_id (the pairs-file entry), person_id, cloth_id
    (the worn garment, the one in ``cloth.jpg``), unpaired_cloth_id / unpaired_cloth_key (the listed
    cloth for unpaired evaluation and the key of the sample of the same split that holds it, or
    None), pose_format ("body25" | "coco18"); MPV adds same_cloth_keys.

Keys are ``common.safe_key`` of the dataset-relative person name without its extension: only
``[A-Za-z0-9_-]`` are kept, anything else is escaped as ``~XX`` (no '.', '/' or '..' can reach a
tar member name, and the mapping is reversible with ``common.unsafe_key``).

``strict=True`` raises ``MissingModalityError`` (sample id + expected path) at the first sample
that lacks a required member; ``strict=False`` logs it on the ``shards.layouts`` logger, counts
it in the returned iterator's ``stats`` and skips the sample.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from shards.layouts import mpv, viton, viton_hd
from shards.layouts.common import ReadStats, SampleIterator, safe_key, unsafe_key

#: Layout name -> reader ``(src, split, strict) -> SampleIterator``.
LAYOUTS: dict[str, Callable[..., SampleIterator]] = {
    "viton_hd": viton_hd.read,
    "viton": viton.read,
    "mpv": mpv.read,
}


def read_layout(name: str, src: Path, split: str, strict: bool = True) -> SampleIterator:
    """Iterate the samples of ``split`` of the dataset at ``src`` read as layout ``name``.

    The returned iterator's ``stats`` (``ReadStats``) counts what was yielded and skipped.
    """
    try:
        reader = LAYOUTS[name]
    except KeyError:
        raise ValueError(f"unknown dataset layout {name!r}; allowed: {sorted(LAYOUTS)}") from None
    return reader(Path(src), split, strict=strict)


__all__ = ["LAYOUTS", "ReadStats", "SampleIterator", "read_layout", "safe_key", "unsafe_key"]
