"""The multi-pose representation (seeds 002 and 004): person A in pose p_A, wearing cloth C, and the
same person B in pose p_B, as the arrays a "put C on A, in B's pose" network reads and is judged by.

Built from a two-person sample (layout ``mpv_triplets``; ``DecodedSample.target``). Source A:

- ``src_person`` (3) in [-1, 1]; ``src_parse_onehot`` (20 LIP labels);
- ``src_agnostic`` (3): the source with its upper garment (LIP 5 upper clothes, 6 dress, 7 coat)
  set to 0 (mid-gray in [-1, 1]), the person "without clothes" both papers start from;
- ``face_box_src`` (4): a square box around A's hair and face (``regions.face_box``), in pixels.

Target pose and garment: ``tgt_pose`` (18): COCO-18 keypoints of B as binary disks of radius 4 at
192 px width (scaled with the width), FAMILIES.md §2.1's choice (the papers give no encoding);
``cloth`` (3), ``cloth_mask`` (1).

Ground truth, all of B (the names every other representation gives its ground truth, so paired
evaluation, masked metrics and sample grids read them unchanged): ``person`` (3); ``parse`` (H, W)
int64 LIP labels; ``tgt_parse_onehot`` (20); ``tgt_cloth_region`` (1, LIP 5/6/7); ``tgt_cloth_rgb``
(3: B's garment on white, CP-VTON's convention).

``face_box_tgt`` (4): a box around B's head keypoints (nose, eyes, ears), not around B's parsed
face: B's parse is not known at inference, so a face stage finds the head in the parse it predicts
and falls back to this box, which a user's target pose gives (``regions.face_boxes``).
"""

from __future__ import annotations

import numpy as np

from vton_models.representation.base import Representation
from vton_models.representation.cpvton import UPPER_GARMENT_LABELS, region
from vton_models.representation.image import to_network_rgb
from vton_models.representation.parse import NUM_LIP_LABELS, check_labels, parse_onehot
from vton_models.representation.pose import pose_coco18, pose_disks
from vton_models.representation.regions import face_box
from vton_models.representation.sample import DecodedSample

#: Disk radius in pixels at this width (SPG-VTON's 4 at 256x192); scaled with the image width.
POSE_DISK_RADIUS = 4
POSE_REFERENCE_WIDTH = 192


def target_pose_disks(pose: np.ndarray, pose_format: str, size: tuple[int, int]) -> np.ndarray:
    """(18, H, W) float32: COCO-18 keypoints as 0/1 disks of radius 4 at 192 px width."""
    return pose_disks(pose_coco18(pose, pose_format), size, POSE_DISK_RADIUS * size[1] / POSE_REFERENCE_WIDTH)


def multipose_representation(sample: DecodedSample, sigma: float | None = None) -> dict[str, np.ndarray]:
    """The arrays listed in the module docstring. ``sigma`` is accepted because the loader passes it
    to every builder; the disks do not use it."""
    del sigma
    if sample.target is None:
        raise ValueError(f"sample '{sample.key}': representation 'multipose' needs a two-person sample "
                         "(a second photo of the same person, e.g. layout 'mpv_triplets'); this one has one person")
    h, w = sample.size
    target = sample.target
    src_labels = check_labels(sample.parse, NUM_LIP_LABELS, f"sample '{sample.key}' parse")
    tgt_labels = check_labels(target.parse, NUM_LIP_LABELS, f"sample '{sample.key}' target.parse")
    src_person, person = to_network_rgb(sample.person), to_network_rgb(target.person)
    src_garment = region(src_labels, UPPER_GARMENT_LABELS)
    tgt_region = region(tgt_labels, UPPER_GARMENT_LABELS)
    return {
        "src_person": src_person,
        "src_parse_onehot": parse_onehot(src_labels),
        "src_agnostic": src_person * (1 - src_garment),
        "face_box_src": face_box(src_labels, sample.pose, sample.pose_format),
        "tgt_pose": target_pose_disks(target.pose, target.pose_format, (h, w)),
        "cloth": to_network_rgb(sample.cloth),
        "cloth_mask": (np.asarray(sample.cloth_mask) > 0).astype(np.float32)[None],
        "person": person,
        "parse": np.asarray(tgt_labels).astype(np.int64),
        "tgt_parse_onehot": parse_onehot(tgt_labels),
        "tgt_cloth_region": tgt_region,
        "tgt_cloth_rgb": person * tgt_region + (1 - tgt_region),
        "face_box_tgt": face_box(np.zeros_like(tgt_labels), target.pose, target.pose_format),
    }


#: Built whole in the loader (the disks and the PIL-resized silhouette have no device form).
MULTIPOSE = Representation("multipose", build=multipose_representation, reads=("target", "cloth_mask.png"))
