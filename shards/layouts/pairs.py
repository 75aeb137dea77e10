"""Readers for layouts driven by a two-column ``{split}_pairs.txt`` (VITON-HD, VITON/CP-VTON).

Both datasets share one convention the reader relies on: a pairs line is ``<person> <cloth>``,
and the garment a person actually *wears* has a name derived from the person's name (VITON-HD:
the same name; VITON: ``<id>_0.jpg`` wears ``<id>_1.jpg``). The listed cloth equals the worn one in
the training lists and is another person's garment in the released test lists, which are
unpaired. So every sample carries the worn cloth (the person photo is its ground truth) and the
listed cloth, when different, goes to ``meta['unpaired_cloth_id']`` for unpaired evaluation,
with ``meta['unpaired_cloth_key']`` naming the sample in the same split whose ``cloth.jpg`` it is.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Sequence

from shards.layouts.common import (
    PairsLine,
    ReadStats,
    SampleIterator,
    UnsafePathError,
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

#: (split folder) -> (person file name, worn cloth file name) -> (required, optional) candidates.
MemberResolver = Callable[[str, str], tuple[dict[str, Sequence[Path]], dict[str, Sequence[Path]]]]


@dataclass(frozen=True)
class PairsLayout:
    """What differs between pairs-file datasets: folder names, worn-cloth rule, pose format."""

    name: str
    pose_format: str  # "body25" | "coco18"
    worn_cloth: Callable[[str, str], str]  # (person name, listed cloth name) -> worn cloth name
    members: Callable[[Path], MemberResolver]  # resolves folder spellings once per split
    cloth_dir: str = "cloth"

    def read(self, src: Path, split: str, strict: bool = True) -> SampleIterator:
        """Samples of ``split``; the pairs file is parsed now, so a bad list fails at the call."""
        src = Path(src)
        lines = read_pairs(src / f"{split}_pairs.txt", columns=2)
        stats = ReadStats()
        label = f"{self.name} {src} [{split}]"
        return SampleIterator(self._samples(src, split, lines, strict, stats, label), stats, label)

    def _samples(
        self, src: Path, split: str, lines: list[PairsLine], strict: bool, stats: ReadStats, label: str
    ) -> Iterator[SampleSource]:
        split_dir = src / split
        members = self.members(split_dir)
        seen: dict[str, PairsLine] = {}
        worn_by: dict[str, str] = {}
        listed_lines = []
        for line in lines:
            key = safe_key(strip_ext(line.fields[0]))
            try:
                person, listed = (confined(src, name, line) for name in line.fields)
            except UnsafePathError as exc:
                reject(exc, strict, stats, key, "pairs line", f"{line.path}:{line.line_no}")
                continue
            check_unique(key, seen, line)
            worn_by[strip_ext(self.worn_cloth(person, listed))] = key
            listed_lines.append(line)
        for line in listed_lines:
            person, listed = line.fields
            worn = self.worn_cloth(person, listed)
            key = safe_key(strip_ext(person))
            required, optional = members(person, worn)
            paths = resolve(key, label, required, optional, strict, stats)
            if paths is None:
                continue
            if not usable(src, paths, line, strict, stats, key):
                continue
            unpaired = None if listed == worn else listed
            if unpaired is not None and not (split_dir / self.cloth_dir / unpaired).is_file():
                expected = split_dir / self.cloth_dir / unpaired
                reject(MissingModalityError(f"{label}: sample '{key}' lists unpaired cloth {unpaired!r} "
                                            f"({line.path}:{line.line_no}): expected {expected}"),
                       strict, stats, key, "unpaired cloth", str(expected))
                continue
            meta = {
                "layout": self.name,
                "split": split,
                "original_size": list(image_size(paths["person.jpg"])),
                "pair_id": f"{person} {listed}",
                "person_id": strip_ext(person),
                "cloth_id": strip_ext(worn),
                "unpaired_cloth_id": None if unpaired is None else strip_ext(unpaired),
                "unpaired_cloth_key": None if unpaired is None else worn_by.get(strip_ext(unpaired)),
                "pose_format": self.pose_format,
            }
            yield SampleSource(key=key, paths=paths, meta=meta)
