"""The data contract between layout readers, the shard writer and the stream.

A shard sample is the *raw* modalities of one try-on pair, keyed by sample id, so that every
model family can build its own inputs later in the loader workers. Bytes are stored exactly as
they were read from the source dataset: a round trip through shards must be byte-identical.

Multi-pose samples (MPV triplets) carry a second person of the same identity wearing the same
garment (``target.*``: all three members or none). ``meta.json`` says how to read what the bytes
do not: ``pose_format`` ("body25" | "coco18"), ``keypoint_frame`` ([H, W] the keypoints are in when
that differs from the image, DressCode's 512x384), ``parse_labels`` ("lip", default, or "atr":
DressCode's 18 ATR classes, mapped to LIP when decoded) and the same for the target
(``target_pose_format``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

#: Members every sample must carry (WebDataset extension -> meaning).
REQUIRED_MEMBERS: tuple[str, ...] = (
    "person.jpg",  # the person photo (RGB JPEG)
    "cloth.jpg",  # the in-shop garment photo (RGB JPEG)
    "parse.png",  # human parse label map: LIP 20 classes (or ATR 18, see meta parse_labels)
    "pose.json",  # keypoints: OpenPose JSON (BODY_25 VITON-HD, COCO-18 VITON/MPV) or DressCode's
    "meta.json",  # source layout, original size, pair id, cloth id for unpaired evaluation
)

#: The second person of a multi-pose sample: all of them or none.
TARGET_MEMBERS: tuple[str, ...] = ("target.person.jpg", "target.parse.png", "target.pose.json")

#: Members a sample may carry when the source dataset has them.
OPTIONAL_MEMBERS: tuple[str, ...] = (
    "cloth_mask.png",  # garment foreground mask (0 / 255); derived from the white background when absent
    "pose_img.png",  # the pose as the dataset rendered it (OpenPose *_rendered.png, DressCode skeletons)
    "densepose.png",
    "densepose_uv.npz",
    "agnostic.jpg",
    "parse_agnostic.png",
    *TARGET_MEMBERS,
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
