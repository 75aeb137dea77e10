"""MPV, the multi-pose try-on dataset of MG-VTON (Dong et al., ICCV'19), 256x192, COCO-18 pose.

What is accepted (the layout read by the public MPV loaders, e.g. andrewjong's CP-VTON/SwapNet
MPV datasets and the MPV competition tooling)::

    all_poseA_poseB_clothes.txt        "<personA> <personB> <cloth> <split>" per line, tab or space
                                       separated; ``all_poseA_poseB_clothes_0607.txt`` (the later
                                       revision) is read when the first name is absent
    all/<rel>.jpg                      person and cloth images; <rel> like
                                       "RE321D05M/RE321D05M-Q11@10=person_half_front"
    all_parsing/<rel>.png              LIP parse of each person image
    all_person_clothes_keypoints/<rel>_keypoints.json   COCO-18 ("pose_keypoints")
    all/<cloth rel>_mask.jpg|.png      cloth mask, optional ("...=cloth_front_mask.jpg", the naming
                                       of the MPV-derived repos). MPV itself ships no masks: public
                                       loaders threshold the white background (e.g. < 240), and so
                                       does the decoder (``shards.decode.derive_cloth_mask``) for a
                                       sample stored without one; the reader does not decode images.

A triplet says A and B wear the same cloth in two poses. The shard contract holds one person per
sample, so each *person image* of the split becomes one sample (a person image appears in many
triplets; it is yielded once) with its cloth, and ``meta['same_cloth_keys']`` lists the keys of
the other samples of the split wearing that cloth: multi-pose recipes draw their target pose from
it (computed from the triplets file, so with ``strict=False`` it may name a sample that was
skipped; consumers look partners up and drop missing ones). Keys are ``safe_key(<rel>)``, e.g.
``RE321D05M~2FRE321D05M-Q11~4010~3Dperson_half_front``.
There is no unpaired list in MPV, so ``unpaired_cloth_id`` is None.
"""

from __future__ import annotations

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
from shards.sample import SampleSource

PAIRS_FILES = ("all_poseA_poseB_clothes.txt", "all_poseA_poseB_clothes_0607.txt")
IMAGE_DIR = "all"
PARSE_DIR = "all_parsing"
POSE_DIR = "all_person_clothes_keypoints"


def pairs_file(src: Path) -> Path:
    for name in PAIRS_FILES:
        if (src / name).is_file():
            return src / name
    raise FileNotFoundError(f"MPV triplets file not found: expected {' or '.join(str(src / n) for n in PAIRS_FILES)}")


def _persons(lines: list[PairsLine], split: str, strict: bool, stats: ReadStats) -> dict[str, tuple[str, PairsLine]]:
    """Person image -> (its cloth, first triplet naming it), for the lines of ``split``; a line
    naming a file outside the dataset raises (strict) or is skipped and counted."""
    persons: dict[str, tuple[str, PairsLine]] = {}
    for line in lines:
        a, b, cloth, line_split = line.fields
        if line_split != split:
            continue
        try:
            for name in (a, b, cloth):
                confined(line.path.parent, name, line)
        except UnsafePathError as exc:
            reject(exc, strict, stats, safe_key(strip_ext(a)), "triplets line", f"{line.path}:{line.line_no}")
            continue
        for person in (a, b):
            if person in persons and persons[person][0] != cloth:
                first = persons[person][1]
                raise ValueError(
                    f"{line.path}:{line.line_no}: person {person!r} wears {cloth!r} here but "
                    f"{persons[person][0]!r} at line {first.line_no}"
                )
            persons.setdefault(person, (cloth, line))
    return persons


def person_members(src: Path, person: str) -> dict[str, list[Path]]:
    """Where one person image's photo, parse and keypoints live (``<rel>`` = ``person``)."""
    stem = strip_ext(person)
    return {
        "person.jpg": [src / IMAGE_DIR / person],
        "parse.png": [src / PARSE_DIR / f"{stem}.png"],
        "pose.json": [src / POSE_DIR / f"{stem}_keypoints.json"],
    }


def cloth_mask_candidates(src: Path, cloth: str) -> list[Path]:
    cloth_stem = strip_ext(cloth)
    return [src / IMAGE_DIR / f"{cloth_stem}_mask.jpg", src / IMAGE_DIR / f"{cloth_stem}_mask.png"]


def members(src: Path, person: str, cloth: str) -> tuple[dict[str, list[Path]], dict[str, list[Path]]]:
    """(required, optional) candidates of a person image and its cloth; the cloth mask is optional
    (MPV ships none; the decoder derives one from the white background when it is absent)."""
    required = {**person_members(src, person), "cloth.jpg": [src / IMAGE_DIR / cloth]}
    return required, {"cloth_mask.png": cloth_mask_candidates(src, cloth)}


def read(src: Path, split: str, strict: bool = True) -> SampleIterator:
    """One sample per person image of ``split`` (column 4 of the triplets file)."""
    src = Path(src)
    path = pairs_file(src)
    lines = read_pairs(path, columns=4)
    stats = ReadStats()
    persons = _persons(lines, split, strict, stats)
    if not persons:
        found = sorted({line.fields[3] for line in lines})
        raise ValueError(f"{path}: no triplets for split {split!r} (or none inside the dataset root); splits present: {found}")
    label = f"mpv {src} [{split}]"
    return SampleIterator(_samples(src, split, persons, strict, stats, label), stats, label)


def _samples(
    src: Path, split: str, persons: dict[str, tuple[str, PairsLine]], strict: bool, stats: ReadStats, label: str
) -> Iterator[SampleSource]:
    by_cloth: dict[str, list[str]] = {}
    for person, (cloth, _) in persons.items():
        by_cloth.setdefault(cloth, []).append(safe_key(strip_ext(person)))
    for person, (cloth, line) in persons.items():
        key = safe_key(strip_ext(person))
        required, optional = members(src, person, cloth)
        paths = resolve(key, label, required, optional, strict, stats)
        if paths is None or not usable(src, paths, line, strict, stats, key):
            continue
        a, b, c, _ = line.fields
        meta = {
            "layout": "mpv",
            "split": split,
            "original_size": list(image_size(paths["person.jpg"])),
            "pair_id": f"{a} {b} {c}",
            "person_id": strip_ext(person),
            "cloth_id": strip_ext(cloth),
            "unpaired_cloth_id": None,
            "unpaired_cloth_key": None,
            "same_cloth_keys": sorted(k for k in by_cloth[cloth] if k != key),
            "pose_format": "coco18",
        }
        yield SampleSource(key=key, paths=paths, meta=meta)
