"""Keypoint orders: COCO-18 <-> BODY_25 conversion against a hand-written table, and seed 000's
own 18-point order kept apart from COCO-18."""

from __future__ import annotations

import numpy as np
import pytest

from vton_models.representation.pose import convert_pose, pose18, pose_coco18

#: Written out from OpenPose's documentation (output of the COCO and BODY_25 models), one row per
#: COCO-18 joint: (COCO-18 index, BODY_25 index, name).
HAND_TABLE = (
    (0, 0, "nose"), (1, 1, "neck"), (2, 2, "right shoulder"), (3, 3, "right elbow"), (4, 4, "right wrist"),
    (5, 5, "left shoulder"), (6, 6, "left elbow"), (7, 7, "left wrist"), (8, 9, "right hip"),
    (9, 10, "right knee"), (10, 11, "right ankle"), (11, 12, "left hip"), (12, 13, "left knee"),
    (13, 14, "left ankle"), (14, 15, "right eye"), (15, 16, "left eye"), (16, 17, "right ear"),
    (17, 18, "left ear"),
)
BODY25_ONLY = {8: "mid hip", 19: "left big toe", 20: "left small toe", 21: "left heel",
               22: "right big toe", 23: "right small toe", 24: "right heel"}


def _numbered(k: int) -> np.ndarray:
    """Joint i at (i, 100 + i) with confidence 0.5 + i / 100: every joint tells where it came from."""
    i = np.arange(k, dtype=np.float32)
    return np.stack([i, 100 + i, 0.5 + i / 100], 1)


def test_body25_to_coco18_follows_the_hand_table():
    coco = convert_pose(_numbered(25), "body25", "coco18")
    for coco_i, body_i, name in HAND_TABLE:
        np.testing.assert_array_equal(coco[coco_i], _numbered(25)[body_i], err_msg=name)
    np.testing.assert_array_equal(pose_coco18(_numbered(25), "body25"), coco)


def test_coco18_to_body25_follows_the_hand_table_and_derives_mid_hip():
    body = convert_pose(_numbered(18), "coco18", "body25")
    for coco_i, body_i, name in HAND_TABLE:
        np.testing.assert_array_equal(body[body_i], _numbered(18)[coco_i], err_msg=name)
    r_hip, l_hip = _numbered(18)[8], _numbered(18)[11]
    np.testing.assert_allclose(body[8], [(r_hip[0] + l_hip[0]) / 2, (r_hip[1] + l_hip[1]) / 2, r_hip[2]])
    for i, name in BODY25_ONLY.items():
        if i != 8:
            assert not body[i].any(), f"{name} has no COCO-18 source and must be undetected"
    np.testing.assert_array_equal(convert_pose(body, "body25", "coco18"), _numbered(18))


def test_mid_hip_is_undetected_when_a_hip_is():
    coco = _numbered(18)
    coco[11] = 0
    assert not convert_pose(coco, "coco18", "body25")[8].any()


def test_seed_000_order_is_not_coco18():
    """``pose18`` (seed 000's tensor: the first 18 BODY_25 joints) keeps mid_hip and drops the left
    ear; COCO-18 weights (CP-VTON, SPG-VTON) need ``pose_coco18``, where channel 8 is the right hip."""
    kp = _numbered(25)
    assert pose18(kp, "body25")[8, 0] == 8 and pose_coco18(kp, "body25")[8, 0] == 9
    assert pose_coco18(kp, "body25")[17, 0] == 18


def test_bad_shapes_and_formats_name_the_problem():
    with pytest.raises(ValueError, match=r"coco18 keypoints must have shape \(18, 3\)"):
        convert_pose(np.zeros((25, 3)), "coco18", "body25")
    with pytest.raises(ValueError, match="formats must be in"):
        convert_pose(np.zeros((18, 3)), "coco18", "mpii")
