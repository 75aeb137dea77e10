"""Representation primitives shared by every family: keypoints and pose encodings, parse maps,
network-space images and agnostic painting, rendered poses, and their torch forms for the device.

A family's own input builder (``Representation``) lives in its folder (``families/<family>/inputs.py``)
and is composed from these; ``vton_models.registry.get_representation(name)`` finds one by name.
"""

from vton_models.representation.base import Representation
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
    POSE18_NAMES,
    POSE_FORMATS,
    is_missing,
    keypoints_from_openpose,
    openpose_xy,
    pose18,
    pose_disks,
    pose_heatmaps,
    pose_profiles,
)
from vton_models.representation.render import render_pose
from vton_models.representation.sample import DecodedSample

__all__ = [
    "AGNOSTIC_GRAY", "GARMENT_LABELS", "NUM_LIP_LABELS", "POSE18_NAMES", "POSE_FORMATS", "DecodedSample",
    "Representation", "agnostic_mask", "check_labels", "cloth_agnostic_rgb", "garment_mask", "is_missing",
    "keypoints_from_openpose", "label_lut", "openpose_xy", "parse_onehot", "pose18", "pose_disks",
    "pose_heatmaps", "pose_profiles", "render_pose", "to_network_rgb",
]
