"""One decoded sample: every modality of a pair at one size, as the loader hands it to a builder."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vton_models.representation.pose import POSE_FORMATS


def _check_pose(key: str, what: str, pose: np.ndarray, pose_format: str) -> None:
    if pose_format not in POSE_FORMATS:
        raise ValueError(f"sample '{key}': unknown {what} format {pose_format!r}; allowed: {sorted(POSE_FORMATS)}")
    k = POSE_FORMATS[pose_format]
    if pose.shape != (k, 3):
        raise ValueError(f"sample '{key}': {what} has shape {pose.shape}, expected ({k}, 3) for {pose_format}")


@dataclass
class PersonView:
    """A second photo of the same person (same garment, another pose): a multi-pose sample's target.

    ``person``: (H, W, 3) uint8 RGB; ``parse``: (H, W) uint8 LIP labels; ``pose``: (K, 3) float32
    keypoints of ``pose_format`` in pixels; the same size as the sample it belongs to.
    """

    person: np.ndarray
    parse: np.ndarray
    pose: np.ndarray
    pose_format: str

    @property
    def size(self) -> tuple[int, int]:
        return self.person.shape[0], self.person.shape[1]


@dataclass
class DecodedSample:
    """One sample after decoding (and any augmentation), all modalities at the same size.

    ``person``/``cloth``: (H, W, 3) uint8 RGB; ``cloth_mask``: (H, W) uint8 0/1; ``parse``: (H, W)
    uint8 LIP labels; ``pose``: (K, 3) float32 keypoints of ``pose_format`` in pixels. Optional:
    ``target``, the same person in another pose (multi-pose datasets); ``pose_img``, (H, W, 3)
    uint8, the pose as the dataset itself rendered it (VITON-HD's OpenPose ``*_rendered.png``).
    """

    person: np.ndarray
    cloth: np.ndarray
    cloth_mask: np.ndarray
    parse: np.ndarray
    pose: np.ndarray
    pose_format: str
    key: str = "<unnamed>"
    target: PersonView | None = None
    pose_img: np.ndarray | None = None

    def __post_init__(self) -> None:
        h, w = self.person.shape[:2]
        expected = {"person": (h, w, 3), "cloth": (h, w, 3), "cloth_mask": (h, w), "parse": (h, w)}
        if self.pose_img is not None:
            expected["pose_img"] = (h, w, 3)
        if self.target is not None:
            expected.update({"target.person": (h, w, 3), "target.parse": (h, w)})
        for name, shape in expected.items():
            owner, _, field_name = name.rpartition(".")
            arr = getattr(self.target if owner else self, field_name)
            if arr.shape != shape:
                raise ValueError(f"sample '{self.key}': {name} has shape {arr.shape}, expected {shape}")
        _check_pose(self.key, "pose", self.pose, self.pose_format)
        if self.target is not None:
            _check_pose(self.key, "target.pose", self.target.pose, self.target.pose_format)

    @property
    def size(self) -> tuple[int, int]:
        return self.person.shape[0], self.person.shape[1]
