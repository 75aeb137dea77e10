"""Dress Code (Morelli et al., CVPR'22): upper-body, lower-body and dress try-on pairs, 1024x768.

What is accepted (checked against the official loader aimagelab/dress-code ``data/dataset.py``,
its README and maintainer answers in that repository's issues #4 and #6)::

    <cat>/images/<id>_0.jpg            -> person.jpg   (<cat>: upper_body | lower_body | dresses)
    <cat>/images/<id>_1.jpg            -> cloth.jpg    (the in-shop garment the person wears)
    <cat>/label_maps/<id>_4.png        -> parse.png    (18 ATR classes, one channel; meta
                                                        parse_labels "atr", mapped to LIP when decoded)
    <cat>/keypoints/<id>_2.json        -> pose.json    ({"keypoints": [[x, y, score, id] x 18]},
                                                        OpenPose COCO-18 computed on the 512x384
                                                        (HxW) resize: meta keypoint_frame [512, 384])
    <cat>/skeletons/<id>_5.jpg         -> pose_img.png        (optional; bytes copied, a JPEG)
    <cat>/dense/<id>_5.png             -> densepose.png       (optional)
    <cat>/dense/<id>_5_uv.npz          -> densepose_uv.npz    (optional)

Pairs lists, per split: ``train_pairs.txt`` for train; for any other split S,
``S_pairs_paired.txt`` (or ``S_pairs.txt``) lists each person with the garment it wears, and
``S_pairs_unpaired.txt``, when present, gives each person another garment of the same category
for unpaired evaluation (``meta['unpaired_cloth_id']``, and ``meta['unpaired_cloth_key']`` is the
sample of the split wearing it, or None). The release ships the lists twice and both are read:

    <cat>/<list>    "<id>_0.jpg <id>_1.jpg"           what the official loader reads; used when present
    <list>          "<id>_0.jpg <id>_1.jpg <c>"      the root copy over all categories, <c> = 0
                                                      (upper_body), 1 (lower_body) or 2 (dresses)
                                                      (the category name is accepted too)

The release has no garment masks (the maintainers say so in issue #6): ``cloth_mask.png`` is
absent and the decoder derives it from the white background. Folders some derived copies add
(``masks/``, ``cloth_mask/``, ``parse/``) are not read: their value encoding is not specified.

One sample per person image, key ``safe_key("<cat>/<id>_0")`` (e.g. ``upper_body~2F013563_0``),
ids ``<cat>/<id>_0`` / ``<cat>/<id>_1``; ``meta`` holds the common keys plus ``category``,
``keypoint_frame`` and ``parse_labels``.

Option ``categories`` (``layout_options``): a list, or the CLI's comma-separated string
(``--layout-option categories=upper_body,dresses``); an unknown name is a ValueError naming it and
the allowed ones. Samples come in the order upper_body, lower_body, dresses whatever the option's
order. Default: every category folder present under the root.

Bad input: names from a list go through ``common.confined`` and resolved files through
``common.check_inside`` (``UnsafePathError`` naming the list file and line); a missing required
file raises ``MissingModalityError`` (sample + expected path); a keypoints file that is not JSON,
not DressCode's format or not 18 points raises ``BadKeypointsError`` naming the file (it is parsed
here, with the decoder's own parser: it is small, and a bad one would otherwise only surface when
the shard is decoded). With ``strict=False`` each of these is logged, counted in ``stats`` and
the sample skipped. A malformed list (wrong field count, a person not named ``<id>_0.<ext>``, a
person listed twice) always raises.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterator, Sequence

from shards.layouts.common import (
    PairsLine,
    ReadStats,
    SampleIterator,
    UnsafePathError,
    check_inside,
    check_unique,
    confined,
    image_size,
    read_pairs,
    reject,
    resolve,
    safe_key,
    strip_ext,
    usable,
)
from shards.sample import MissingModalityError, SampleSource
from vton_models.representation.pose import keypoints_from_dresscode

CATEGORIES: tuple[str, ...] = ("upper_body", "lower_body", "dresses")
#: Column 3 of the root-level lists.
CATEGORY_CODES: dict[str, str] = {"0": "upper_body", "1": "lower_body", "2": "dresses"}
#: (H, W) of the frame DressCode's keypoints were computed in, whatever the image size (issue #4).
KEYPOINT_FRAME: tuple[int, int] = (512, 384)
IMAGE_DIR, KEYPOINT_DIR, LABEL_DIR, SKELETON_DIR, DENSE_DIR = "images", "keypoints", "label_maps", "skeletons", "dense"


class BadKeypointsError(ValueError):
    """A DressCode keypoints file that cannot be read as 18 COCO points; the message names it."""


def parse_categories(categories: str | Sequence[str] | None, src: Path) -> tuple[str, ...]:
    """The selected categories in canonical order; None = the category folders under ``src``."""
    if categories is None:
        present = tuple(c for c in CATEGORIES if (src / c).is_dir())
        if not present:
            raise FileNotFoundError(f"dresscode: no category folder under {src}: expected one of "
                                    f"{', '.join(str(src / c) for c in CATEGORIES)}")
        return present
    names = categories.split(",") if isinstance(categories, str) else list(categories)
    wanted = [str(n).strip() for n in names if str(n).strip()]
    if not wanted:
        raise ValueError(f"dresscode: categories {categories!r} names no category; allowed: {', '.join(CATEGORIES)}")
    for name in wanted:
        if name not in CATEGORIES:
            raise ValueError(f"dresscode: unknown category {name!r}; allowed: {', '.join(CATEGORIES)}")
    for name in wanted:
        if not (src / name).is_dir():
            raise FileNotFoundError(f"dresscode: category folder {src / name} not found")
    return tuple(c for c in CATEGORIES if c in wanted)


def _list_names(split: str) -> tuple[tuple[str, ...], str]:
    """(paired list names in order of preference, unpaired list name) of ``split``."""
    return (f"{split}_pairs_paired.txt", f"{split}_pairs.txt"), f"{split}_pairs_unpaired.txt"


class _Lists:
    """Reads a list per category: ``<cat>/<name>`` (2 fields) or the root ``<name>`` (3 fields)."""

    def __init__(self, src: Path) -> None:
        self.src = src
        self._root: dict[str, dict[str, list[PairsLine]]] = {}

    def find(self, category: str, names: Sequence[str]) -> list[PairsLine] | None:
        """The lines of the first list found (per category first), as (person, cloth) fields."""
        for name in names:
            own = self.src / category / name
            if own.is_file():
                return read_pairs(own, columns=2)
            if (self.src / name).is_file():
                return self._root_lines(name).get(category, [])
        return None

    def _root_lines(self, name: str) -> dict[str, list[PairsLine]]:
        if name not in self._root:
            by_cat: dict[str, list[PairsLine]] = {c: [] for c in CATEGORIES}
            for line in read_pairs(self.src / name, columns=3):
                code = line.fields[2]
                category = CATEGORY_CODES.get(code, code if code in CATEGORIES else None)
                if category is None:
                    raise ValueError(f"{line.path}:{line.line_no}: category {code!r} is not one of "
                                     + ", ".join(f"{k} ({v})" for k, v in CATEGORY_CODES.items()))
                by_cat[category].append(PairsLine(line.fields[:2], line.path, line.line_no))
            self._root[name] = by_cat
        return self._root[name]


def read(src: Path, split: str, strict: bool = True, categories: str | list[str] | None = None) -> SampleIterator:
    """One sample per person image of ``split`` in the selected ``categories``.

    The lists are found and parsed now, so a missing or malformed list fails at the call.
    """
    src = Path(src)
    cats = parse_categories(categories, src)
    paired_names, unpaired_name = _list_names(split)
    lists = _Lists(src)
    paired: dict[str, list[PairsLine]] = {}
    unpaired: dict[str, list[PairsLine]] = {}
    for cat in cats:
        found = lists.find(cat, paired_names)
        if found is None:
            expected = " or ".join(str(p) for n in paired_names for p in (src / cat / n, src / n))
            raise FileNotFoundError(f"dresscode [{split}]: no pairs list for {cat}: expected {expected}")
        paired[cat] = found
        unpaired[cat] = lists.find(cat, [unpaired_name]) or []
    stats = ReadStats()
    label = f"dresscode {src} [{split}]"
    return SampleIterator(_samples(src, split, cats, paired, unpaired, strict, stats, label), stats, label)


def _ident(person: str, line: PairsLine) -> str:
    """``<id>`` of a person listed as ``<id>_0.<ext>`` (the official loader derives every other
    file name from that suffix)."""
    stem = strip_ext(person)
    if not stem.endswith("_0") or len(stem) < 3:
        raise ValueError(f"{line.path}:{line.line_no}: person {person!r} is not named <id>_0.<ext> "
                         "(DressCode person images end in _0, garments in _1)")
    return stem[:-2]


def check_keypoints(path: Path) -> str | None:
    """Why ``path`` is not a usable DressCode keypoints file, or None. Uses the decoder's parser
    (``keypoints_from_dresscode``), so what passes here decodes in the loader."""
    try:
        doc = json.loads(path.read_bytes())
    except (ValueError, UnicodeDecodeError) as exc:
        return f"{path}: not JSON ({exc})"
    if not isinstance(doc, dict) or "keypoints" not in doc or "people" in doc:
        return f'{path}: not a DressCode keypoints file (expected {{"keypoints": [[x, y, score, id] x 18]}})'
    try:
        keypoints_from_dresscode(doc, KEYPOINT_FRAME, KEYPOINT_FRAME, source=str(path))
    except (ValueError, TypeError) as exc:
        return str(exc)
    return None


def _samples(
    src: Path, split: str, cats: tuple[str, ...], paired: dict[str, list[PairsLine]],
    unpaired: dict[str, list[PairsLine]], strict: bool, stats: ReadStats, label: str,
) -> Iterator[SampleSource]:
    # Pass 1: check every listed name and who wears which garment (unpaired_cloth_key).
    rows: list[tuple[str, str, str, str, PairsLine]] = []  # (cat, person, cloth, key, line)
    seen: dict[str, PairsLine] = {}
    worn_by: dict[str, str] = {}
    for cat in cats:
        for line in paired[cat]:
            person, cloth = line.fields
            key = safe_key(f"{cat}/{strip_ext(person)}")
            try:
                for name in (person, cloth):
                    confined(src, name, line)
            except UnsafePathError as exc:
                reject(exc, strict, stats, key, "pairs line", f"{line.path}:{line.line_no}")
                continue
            _ident(person, line)
            check_unique(key, seen, line)
            worn_by[f"{cat}/{strip_ext(cloth)}"] = key
            rows.append((cat, person, cloth, key, line))
    listed: dict[tuple[str, str], PairsLine] = {}
    listed_seen: dict[str, PairsLine] = {}
    for cat in cats:
        for line in unpaired[cat]:
            check_unique(safe_key(f"{cat}/{strip_ext(line.fields[0])}"), listed_seen, line)
            listed[(cat, line.fields[0])] = line

    for cat, person, cloth, key, line in rows:
        base = src / cat
        ident = _ident(person, line)
        required = {
            "person.jpg": [base / IMAGE_DIR / person],
            "cloth.jpg": [base / IMAGE_DIR / cloth],
            "parse.png": [base / LABEL_DIR / f"{ident}_4.png"],
            "pose.json": [base / KEYPOINT_DIR / f"{ident}_2.json"],
        }
        optional = {
            "pose_img.png": [base / SKELETON_DIR / f"{ident}_5.jpg"],
            "densepose.png": [base / DENSE_DIR / f"{ident}_5.png"],
            "densepose_uv.npz": [base / DENSE_DIR / f"{ident}_5_uv.npz"],
        }
        paths = resolve(key, label, required, optional, strict, stats)
        if paths is None or not usable(src, paths, line, strict, stats, key):
            continue
        problem = check_keypoints(paths["pose.json"])
        if problem is not None:
            reject(BadKeypointsError(f"{label}: sample '{key}': bad keypoints: {problem}"), strict, stats,
                    key, "pose.json", str(paths["pose.json"]))
            continue
        other = _unpaired_cloth(src, cat, person, cloth, key, listed, strict, stats, label)
        if other is False:
            continue
        meta = {
            "layout": "dresscode",
            "split": split,
            "original_size": list(image_size(paths["person.jpg"])),
            "pair_id": f"{person} {cloth}",
            "person_id": f"{cat}/{strip_ext(person)}",
            "cloth_id": f"{cat}/{strip_ext(cloth)}",
            "unpaired_cloth_id": other,
            "unpaired_cloth_key": None if other is None else worn_by.get(other),
            "pose_format": "coco18",
            "category": cat,
            "keypoint_frame": list(KEYPOINT_FRAME),
            "parse_labels": "atr",
        }
        yield SampleSource(key=key, paths=paths, meta=meta)


def _unpaired_cloth(src: Path, cat: str, person: str, worn: str, key: str, listed: dict[tuple[str, str], PairsLine],
                    strict: bool, stats: ReadStats, label: str) -> str | None | bool:
    """``<cat>/<cloth id>`` of the unpaired garment listed for ``person``; None when none is
    listed (or it is the worn one); False when the sample is skipped (non-strict)."""
    line = listed.get((cat, person))
    if line is None or line.fields[1] == worn:
        return None
    cloth = line.fields[1]
    try:
        confined(src, cloth, line)
        path = check_inside(src, src / cat / IMAGE_DIR / cloth, line)
    except UnsafePathError as exc:
        reject(exc, strict, stats, key, "unpaired cloth", f"{line.path}:{line.line_no}")
        return False
    if not path.is_file():
        exc = MissingModalityError(f"{label}: sample '{key}' lists unpaired cloth {cloth!r} "
                                   f"({line.path}:{line.line_no}): expected {path}")
        reject(exc, strict, stats, key, "unpaired cloth", str(path))
        return False
    return f"{cat}/{strip_ext(cloth)}"
