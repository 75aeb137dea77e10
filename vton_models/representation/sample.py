"""One decoded sample: every modality of a pair at one size, as the loader hands it to a builder."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vton_models.representation.pose import POSE_FORMATS


@dataclass
class DecodedSample:
    """One sample after decoding (and any augmentation), all modalities at the same size.

    ``person``/``cloth``: (H, W, 3) uint8 RGB; ``cloth_mask``: (H, W) uint8 0/1; ``parse``: (H, W)
    uint8 LIP labels; ``pose``: (K, 3) float32 keypoints of ``pose_format`` in pixels.
    """

    person: np.ndarray
    cloth: np.ndarray
    cloth_mask: np.ndarray
    parse: np.ndarray
    pose: np.ndarray
    pose_format: str
    key: str = "<unnamed>"

    def __post_init__(self) -> None:
        h, w = self.person.shape[:2]
        expected = {"person": (h, w, 3), "cloth": (h, w, 3), "cloth_mask": (h, w), "parse": (h, w)}
        for name, shape in expected.items():
            arr = getattr(self, name)
            if arr.shape != shape:
                raise ValueError(f"sample '{self.key}': {name} has shape {arr.shape}, expected {shape}")
        if self.pose_format not in POSE_FORMATS:
            raise ValueError(f"sample '{self.key}': unknown pose format {self.pose_format!r}; "
                             f"allowed: {sorted(POSE_FORMATS)}")
        k = POSE_FORMATS[self.pose_format]
        if self.pose.shape != (k, 3):
            raise ValueError(f"sample '{self.key}': pose has shape {self.pose.shape}, "
                             f"expected ({k}, 3) for {self.pose_format}")

    @property
    def size(self) -> tuple[int, int]:
        return self.person.shape[0], self.person.shape[1]
