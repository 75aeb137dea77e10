"""MPV triplets: one *two-person* sample per line of MPV's triplets file (multi-pose try-on).

Multi-pose families (``tree_block``, ``spg_vton``) learn "person A in pose p_A, wearing cloth C ->
the same person in pose p_B", so a sample must hold both photos; storing the partner in the
sample (``target.*`` members) rather than joining at stream time keeps "the bytes of one sample
are one ranged GET" and the stream's deterministic resume plan.

What is accepted: the files of the ``mpv`` layout (``shards.layouts.mpv``: the triplets file
``all_poseA_poseB_clothes.txt`` or ``..._0607.txt``, ``all/``, ``all_parsing/``,
``all_person_clothes_keypoints/``, optional ``<cloth rel>_mask.jpg|.png``), resolved by the same
code. Each line ``<A> <B> <cloth> <split>`` of ``split`` becomes one sample:

    person.jpg, parse.png, pose.json                 A (the source person, COCO-18 pose)
    cloth.jpg, cloth_mask.png (if a _mask file exists; else the decoder derives it from the
                               white background, as the public MPV loaders do)
    target.person.jpg, target.parse.png, target.pose.json   B (same person and cloth, other pose)

Keys are ``safe_key(strip_ext(A) + "|" + strip_ext(B))`` ('|' is escaped as ``~7C``), so
``unsafe_key(key) == meta['triplet_id']``. Two lines of one split with the same (A, B) are an
error naming the file and both lines. ``meta`` holds the common keys (``layout`` "mpv_triplets",
``pair_id`` "<A> <B> <cloth>", ``person_id`` A, ``cloth_id``) plus ``target_person_id`` B,
``triplet_id``, ``pose_format`` and ``target_pose_format`` ("coco18").

Options (``layout_options``; the CLI passes strings):

* ``subset``: a list file pinning an exact set of triplets (the MPV subset a paper used is often
  not public, FAMILIES.md §2.1). One entry per line, whitespace separated, blank lines and ``#``
  comments skipped; an entry is ``A B cloth split``, ``A B cloth`` or ``A B`` (a pairs file) and
  matches the triplets-file lines with those fields. Entries of other splits are ignored, so one
  list serves every split; an entry that matches no line of the triplets file at all, or is
  listed twice, is an error naming the subset file and line. A relative path is looked up in the
  working directory first, then under ``src``.
* ``front_only`` (bool, or "true"/"1"/"yes" / "false"/"0"/"no"): keep only triplets whose A, B and
  cloth file names (the last path component) contain ``front`` (MPV names views like
  ``=person_half_front`` / ``=person_whole_back``); the frontal subset of FAMILIES.md §2.1.

Both filters apply before anything is resolved; the split must keep at least one triplet.

Unpaired evaluation (MPV has no unpaired list; FAMILIES.md §4.1 asks for "cloth from another
triplet"): over the split's samples (after filters and skips), take the distinct cloths in
sorted order c_0 .. c_{K-1}; a sample wearing c_k gets ``unpaired_cloth_id`` =
c_{(k + K//2) mod K} and ``unpaired_cloth_key`` = the smallest key of the split's samples
wearing it. Deterministic (no seed), never the sample's own cloth when K >= 2 (None when K = 1),
every cloth of the split is shown (to the wearers of one other cloth), and the half-way shift
pairs garments far apart in name order (MPV product codes of one brand sort together). It is computed over the samples
actually yielded, so with ``strict=False`` the key always names a sample of the shard set.

Bad input: every name from the triplets or subset file goes through ``common.confined`` and
every resolved file through ``common.check_inside`` (``UnsafePathError`` naming file and line).
A missing file of A, of the cloth or of the partner B raises ``MissingModalityError`` naming the
sample and the expected path (``strict=True``), or is logged, counted in ``stats`` and the
triplet skipped (``strict=False``); all triplets are resolved before the first one is yielded.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from shards.layouts.common import (
    PairsLine,
    ReadStats,
    SampleIterator,
    UnsafePathError,
    confined,
    image_size,
    read_pairs,
    reject,
    resolve,
    safe_key,
    strip_ext,
    usable,
)
from shards.layouts.mpv import members, pairs_file, person_members
from shards.sample import SampleSource

LAYOUT = "mpv_triplets"
POSE_FORMAT = "coco18"
FRONT = "front"
_TRUE = frozenset({"true", "1", "yes", "on"})
_FALSE = frozenset({"false", "0", "no", "off", ""})


@dataclass(frozen=True)
class Triplet:
    """One line of the triplets file: source person, target person, cloth, split."""

    a: str
    b: str
    cloth: str
    split: str
    line: PairsLine

    @property
    def name(self) -> str:
        return f"{strip_ext(self.a)}|{strip_ext(self.b)}"

    @property
    def key(self) -> str:
        return safe_key(self.name)

    def is_front(self) -> bool:
        return all(FRONT in n.rpartition("/")[2] for n in (self.a, self.b, self.cloth))


def parse_flag(value: bool | str | int | None, option: str = "front_only") -> bool:
    """A boolean layout option as given in Python or on the command line ("true", "1", "no", ...)."""
    if isinstance(value, bool):
        return value
    if value is None:
        return False
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueError(f"mpv_triplets: option {option}={value!r} is not a boolean "
                     f"(use true/false, 1/0, yes/no)")


def triplets(src: Path, split: str, strict: bool = True, stats: ReadStats | None = None) -> list[Triplet]:
    """Every line of the triplets file whose names stay inside ``src``. An escaping line raises
    (strict) or, non-strict, is dropped: counted as skipped when it belongs to ``split``."""
    rows = []
    for line in read_pairs(pairs_file(src), columns=4):
        a, b, cloth, line_split = line.fields
        try:
            for name in (a, b, cloth):
                confined(src, name, line)
        except UnsafePathError as exc:
            if strict or line_split == split:
                reject(exc, strict, stats or ReadStats(), safe_key(f"{strip_ext(a)}|{strip_ext(b)}"),
                       "triplets line", f"{line.path}:{line.line_no}")
            continue
        rows.append(Triplet(a, b, cloth, line_split, line))
    return rows


def _unique(rows: list[Triplet]) -> None:
    """One sample per (A, B) within a split: a second line is a data error naming both lines."""
    seen: dict[tuple[str, str], Triplet] = {}
    for t in rows:
        first = seen.setdefault((t.split, t.key), t)
        if first is not t:
            raise ValueError(
                f"{t.line.path}:{t.line.line_no}: triplet {t.a!r} -> {t.b!r} already listed at line "
                f"{first.line.line_no} (sample '{t.key}'); a split yields one sample per (A, B)"
            )


def _subset_path(subset: str | Path, src: Path) -> Path:
    given = Path(subset).expanduser()
    for candidate in (given, src / given) if not given.is_absolute() else (given,):
        if candidate.is_file():
            return candidate
    tried = given if given.is_absolute() else f"{given.resolve()} or {src / given}"
    raise FileNotFoundError(f"mpv_triplets: subset file not found: {tried}")


def read_subset(path: Path, src: Path) -> list[PairsLine]:
    """Entries of a subset list: 2 (A B), 3 (A B cloth) or 4 (A B cloth split) fields a line."""
    rows: list[PairsLine] = []
    seen: dict[tuple[str, ...], PairsLine] = {}
    for no, text in enumerate(path.read_text().splitlines(), start=1):
        text = text.strip()
        if not text or text.startswith("#"):
            continue
        fields = tuple(text.split())
        line = PairsLine(fields, path, no)
        if not 2 <= len(fields) <= 4:
            raise ValueError(f"{path}:{no}: expected 'A B', 'A B cloth' or 'A B cloth split' "
                             f"(2-4 fields), got {len(fields)}: {text!r}")
        for name in fields[:3]:
            confined(src, name, line)
        first = seen.setdefault(fields, line)
        if first is not line:
            raise ValueError(f"{path}:{no}: subset entry {text!r} already listed at line {first.line_no}")
        rows.append(line)
    return rows


def select_subset(rows: list[Triplet], entries: list[PairsLine]) -> set[int]:
    """Indices of ``rows`` matched by a subset entry; an entry matching none is an error."""
    by_fields: dict[tuple[str, ...], list[int]] = {}
    for i, t in enumerate(rows):
        full = (t.a, t.b, t.cloth, t.split)
        for n in (2, 3, 4):
            by_fields.setdefault(full[:n], []).append(i)
    chosen: set[int] = set()
    for entry in entries:
        found = by_fields.get(entry.fields)
        if not found:
            source = rows[0].line.path if rows else "the triplets file"
            raise ValueError(f"{entry.path}:{entry.line_no}: subset entry {' '.join(entry.fields)!r} "
                             f"is not a triplet of {source}")
        chosen.update(found)
    return chosen


def read(src: Path, split: str, strict: bool = True, subset: str | Path | None = None,
         front_only: bool | str = False) -> SampleIterator:
    """One two-person sample per triplet of ``split`` (after ``subset`` and ``front_only``).

    The triplets and subset files are parsed and checked now, so a bad list fails at the call;
    files are resolved when iteration starts.
    """
    src = Path(src)
    front = parse_flag(front_only)
    stats = ReadStats()
    rows = triplets(src, split, strict, stats)
    _unique(rows)
    keep = set(range(len(rows)))
    if subset is not None and str(subset) != "":
        keep &= select_subset(rows, read_subset(_subset_path(subset, src), src))
    chosen = [t for i, t in enumerate(rows) if i in keep and t.split == split and (not front or t.is_front())]
    if not chosen:
        path = pairs_file(src)
        in_split = [t for t in rows if t.split == split]
        if not in_split:
            found = sorted({t.split for t in rows})
            raise ValueError(f"{path}: no triplets for split {split!r}; splits present: {found}")
        filters = ", ".join(f for f, on in ((f"subset={subset}", subset not in (None, "")),
                                            ("front_only", front)) if on)
        raise ValueError(f"{path}: none of the {len(in_split)} triplets of split {split!r} pass {filters}")
    label = f"{LAYOUT} {src} [{split}]"
    return SampleIterator(_samples(src, split, chosen, strict, stats, label), stats, label)


def _resolve(src: Path, t: Triplet, strict: bool, stats: ReadStats, label: str) -> dict[str, Path] | None:
    required, optional = members(src, t.a, t.cloth)
    required.update({f"target.{m}": c for m, c in person_members(src, t.b).items()})
    paths = resolve(t.key, label, required, optional, strict, stats)
    if paths is None or not usable(src, paths, t.line, strict, stats, t.key):
        return None
    return paths


def unpaired_cloths(worn: dict[str, str]) -> dict[str, tuple[str, str] | None]:
    """Sample key -> (unpaired cloth, key of a sample wearing it), see the module docstring."""
    cloths = sorted(set(worn.values()))
    holder: dict[str, str] = {}
    for key in sorted(worn):
        holder.setdefault(worn[key], key)
    if len(cloths) < 2:
        return {key: None for key in worn}
    shift = len(cloths) // 2
    index = {c: i for i, c in enumerate(cloths)}
    out = {}
    for key, cloth in worn.items():
        other = cloths[(index[cloth] + shift) % len(cloths)]
        out[key] = (other, holder[other])
    return out


def _samples(src: Path, split: str, chosen: list[Triplet], strict: bool, stats: ReadStats,
             label: str) -> Iterator[SampleSource]:
    resolved = [(t, p) for t in chosen if (p := _resolve(src, t, strict, stats, label)) is not None]
    unpaired = unpaired_cloths({t.key: strip_ext(t.cloth) for t, _ in resolved})
    for t, paths in resolved:
        other = unpaired[t.key]
        meta = {
            "layout": LAYOUT,
            "split": split,
            "original_size": list(image_size(paths["person.jpg"])),
            "pair_id": f"{t.a} {t.b} {t.cloth}",
            "person_id": strip_ext(t.a),
            "cloth_id": strip_ext(t.cloth),
            "unpaired_cloth_id": None if other is None else other[0],
            "unpaired_cloth_key": None if other is None else other[1],
            "pose_format": POSE_FORMAT,
            "target_person_id": strip_ext(t.b),
            "target_pose_format": POSE_FORMAT,
            "triplet_id": t.name,
        }
        yield SampleSource(key=t.key, paths=paths, meta=meta)
