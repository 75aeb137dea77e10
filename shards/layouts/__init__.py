"""Readers of try-on datasets as they lie on disk, each yielding ``shards.sample.SampleSource``.

A reader resolves, per sample, which file backs each member of the shard contract and fills
``meta`` with the same keys for every layout, so the writer and the families never learn where a
sample came from::

    layout, split, original_size [H, W], pair_id (the pairs-file entry), person_id, cloth_id
    (the worn garment, the one in ``cloth.jpg``), unpaired_cloth_id / unpaired_cloth_key (the listed
    cloth for unpaired evaluation and the key of the sample of the same split that holds it, or
    None), pose_format ("body25" | "coco18"). Layout-specific: ``mpv`` adds same_cloth_keys;
    ``mpv_triplets`` (two-person samples) adds target_person_id, target_pose_format, triplet_id;
    ``dresscode`` adds category, keypoint_frame ([512, 384]) and parse_labels ("atr").

Keys are ``common.safe_key`` of the dataset-relative person name without its extension (for
``mpv_triplets`` of "A|B", for ``dresscode`` of "<category>/<id>_0"): only
``[A-Za-z0-9_-]`` are kept, anything else is escaped as ``~XX`` (no '.', '/' or '..' can reach a
tar member name, and the mapping is reversible with ``common.unsafe_key``).

``strict=True`` raises at the first bad sample: ``MissingModalityError`` (sample id + expected
path) for a missing member, ``UnsafePathError`` (list file + line) for a name leaving the dataset
root, a layout's own error for an unusable file (DressCode keypoints); ``strict=False``
(``vton shard build --skip-bad``) logs it on the ``shards.layouts`` logger, counts it in the
returned iterator's ``stats`` and skips the sample. A malformed list file (wrong field count, a
duplicate) always raises: it is not one bad sample.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any, Callable, Mapping

from shards.layouts import dresscode, mpv, mpv_triplets, viton, viton_hd
from shards.layouts.common import ReadStats, SampleIterator, safe_key, unsafe_key

#: Layout name -> reader ``(src, split, strict, **options) -> SampleIterator``.
LAYOUTS: dict[str, Callable[..., SampleIterator]] = {
    "viton_hd": viton_hd.read,
    "viton": viton.read,
    "mpv": mpv.read,
    "mpv_triplets": mpv_triplets.read,
    "dresscode": dresscode.read,
}


def layout_options(name: str) -> list[str]:
    """The options layout ``name``'s reader takes beyond (src, split, strict)."""
    params = inspect.signature(LAYOUTS[name]).parameters
    return [p for p in params if p not in ("src", "split", "strict")]


def read_layout(name: str, src: Path, split: str, strict: bool = True,
                options: Mapping[str, Any] | None = None) -> SampleIterator:
    """Iterate the samples of ``split`` of the dataset at ``src`` read as layout ``name``.

    ``options``: the reader's own (``layout_options(name)``); an unknown one is an error naming it.
    The returned iterator's ``stats`` (``ReadStats``) counts what was yielded and skipped.
    """
    try:
        reader = LAYOUTS[name]
    except KeyError:
        raise ValueError(f"unknown dataset layout {name!r}; allowed: {sorted(LAYOUTS)}") from None
    options = dict(options or {})
    unknown = sorted(set(options) - set(layout_options(name)))
    if unknown:
        allowed = ", ".join(layout_options(name)) or "none"
        raise ValueError(f"layout {name!r} has no option {unknown[0]!r}; its options: {allowed}")
    return reader(Path(src), split, strict=strict, **options)


__all__ = ["LAYOUTS", "ReadStats", "SampleIterator", "read_layout", "safe_key", "unsafe_key"]
