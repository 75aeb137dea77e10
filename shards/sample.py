"""The data contract between layout readers, the shard writer and the stream.

A shard sample is the *raw* modalities of one try-on pair, keyed by sample id, so that every
model family can build its own inputs later in the loader workers. Bytes are stored exactly as
they were read from the source dataset: a round trip through shards must be byte-identical.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

#: Members every sample must carry (WebDataset extension -> meaning).
REQUIRED_MEMBERS: tuple[str, ...] = (
    "person.jpg",  # the person photo (RGB JPEG)
    "cloth.jpg",  # the in-shop garment photo (RGB JPEG)
    "cloth_mask.png",  # garment foreground mask (0 / 255)
    "parse.png",  # LIP label map, 20 classes (palette or grayscale PNG, values 0-19)
    "pose.json",  # OpenPose JSON, BODY_25 for VITON-HD, COCO-18 for VITON/CP-VTON
    "meta.json",  # source layout, original size, pair id, cloth id for unpaired evaluation
)

#: Members a sample may carry when the source dataset has them.
OPTIONAL_MEMBERS: tuple[str, ...] = (
    "densepose.png",
    "agnostic.jpg",
    "parse_agnostic.png",
)

ALL_MEMBERS: tuple[str, ...] = REQUIRED_MEMBERS + OPTIONAL_MEMBERS


@dataclass(frozen=True)
class SampleSource:
    """Where one sample's members live on disk, before sharding.

    ``meta`` is serialised to ``meta.json`` by the writer; every other member is copied byte for
    byte from ``paths``.
    """

    key: str
    paths: dict[str, Path]
    meta: dict = field(default_factory=dict)

    def missing_required(self) -> list[str]:
        return [m for m in REQUIRED_MEMBERS if m != "meta.json" and m not in self.paths]


class MissingModalityError(ValueError):
    """A sample lacks a required modality; the message names the sample id and the expected path."""
