"""Representation primitives shared by every family: keypoints (their orders and conversions) and
pose encodings, parse maps (LIP, and ATR mapped to LIP), network-space images and agnostic painting,
rendered poses, face/hair boxes with differentiable crop and paste-back, and torch forms for the
device.

A family's own input builder (``Representation``) lives in its folder (``families/<family>/inputs.py``)
and is composed from these; ``vton_models.registry.get_representation(name)`` finds one by name.
"""

from vton_models.representation.base import Representation
from vton_models.representation.cpvton import CPVTON, cpvton_representation, cpvton_shape, pose_squares
from vton_models.representation.image import AGNOSTIC_GRAY, cloth_agnostic_rgb, to_network_rgb
from vton_models.representation.parse import (
    GARMENT_LABELS,
    NUM_LIP_LABELS,
    agnostic_mask,
    check_labels,
    garment_mask,
    label_lut,
    parse_onehot,
)
from vton_models.representation.pose import (
    BODY25_NAMES,
    COCO18_NAMES,
    POSE18_NAMES,
    POSE_FORMATS,
    POSE_NAMES,
    convert_pose,
    is_missing,
    keypoints_from_openpose,
    openpose_xy,
    pose18,
    pose_disks,
    pose_heatmaps,
    pose_profiles,
)
from vton_models.representation.regions import box_mask, crop_boxes, face_box, paste_boxes
from vton_models.representation.render import render_pose
from vton_models.representation.sample import DecodedSample, PersonView

__all__ = [
    "AGNOSTIC_GRAY", "BODY25_NAMES", "CPVTON", "COCO18_NAMES", "GARMENT_LABELS", "NUM_LIP_LABELS", "POSE18_NAMES",
    "POSE_FORMATS", "POSE_NAMES", "DecodedSample", "PersonView", "Representation", "agnostic_mask", "box_mask",
    "check_labels", "cloth_agnostic_rgb", "convert_pose", "cpvton_representation", "cpvton_shape", "crop_boxes", "face_box", "garment_mask", "is_missing",
    "keypoints_from_openpose", "label_lut", "openpose_xy", "parse_onehot", "paste_boxes", "pose18", "pose_disks",
    "pose_heatmaps", "pose_profiles", "pose_squares", "render_pose", "to_network_rgb",
]
