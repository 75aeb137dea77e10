"""Hand-checked values of the representations (seed paper 000 and VITON-HD groupings), built
whole in the loader (numpy) and split into a compact part and a torch expansion."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from vton_models.families.unet_sa.inputs import UNET_SA, unet_sa_representation
from vton_models.families.viton_hd.inputs import parse13_to_7, parse_to_7, parse_to_13
from vton_models.registry import REPRESENTATIONS, get_representation
from vton_models.representation import (
    POSE18_NAMES,
    DecodedSample,
    agnostic_mask,
    cloth_agnostic_rgb,
    garment_mask,
    keypoints_from_openpose,
    parse_onehot,
    pose18,
    pose_disks,
    pose_heatmaps,
)

# 8 x 6 person: hair, face, upper clothes (5) with a coat patch (7), arms, pants, legs, shoes.
PARSE = np.array(
    [
        [0, 0, 2, 2, 0, 0],
        [0, 0, 13, 13, 0, 0],
        [0, 5, 5, 5, 5, 0],
        [14, 5, 7, 7, 5, 15],
        [14, 5, 5, 5, 5, 15],
        [0, 9, 9, 9, 9, 0],
        [0, 16, 0, 0, 17, 0],
        [0, 18, 0, 0, 19, 0],
    ],
    np.uint8,
)
H, W = PARSE.shape
NOSE = (2.0, 1.0, 0.8)  # x, y, confidence


def _person() -> np.ndarray:
    ys, xs = np.mgrid[0:H, 0:W]
    return np.stack([10 * ys + 5, 20 * xs + 3, np.full_like(ys, 200)], -1).astype(np.uint8)


def _body25() -> np.ndarray:
    kp = np.zeros((25, 3), np.float32)
    kp[0] = NOSE
    kp[2] = (5.0, 5.0, 0.0)  # r_shoulder placed but undetected: must give a zero channel
    kp[18] = (3.0, 1.0, 0.9)  # l_ear: index 18 is not among the first 18, must be dropped
    kp[22] = (1.0, 7.0, 0.7)  # a foot keypoint: dropped too
    return kp


def _sample() -> DecodedSample:
    cloth = np.full((H, W, 3), 255, np.uint8)
    cloth[2:6, 1:5] = (200, 30, 40)
    mask = np.zeros((H, W), np.uint8)
    mask[2:6, 1:5] = 1
    return DecodedSample(person=_person(), cloth=cloth, cloth_mask=mask, parse=PARSE.copy(),
                         pose=_body25(), pose_format="body25", key="tiny")


def _split_build(samples: list[DecodedSample], sigma: float) -> list[dict[str, np.ndarray]]:
    """The consumer-side path: compact per sample, collated, expanded by torch, split back."""
    compact = [UNET_SA.compact_sample(s, sigma=sigma) for s in samples]
    batch = {k: torch.stack([torch.from_numpy(c[k]) for c in compact]) for k in compact[0]}
    out = UNET_SA.expand_batch(batch)
    return [{k: v[i].numpy() for k, v in out.items()} for i in range(len(samples))]


def _build(where: str, sample: DecodedSample, sigma: float = 3.0) -> dict[str, np.ndarray]:
    return unet_sa_representation(sample, sigma=sigma) if where == "loader" else _split_build([sample], sigma)[0]


@pytest.mark.parametrize("where", ["loader", "consumer"])
def test_41_channel_layout_matches_hand_computed_values(where):
    rep = _build(where, _sample(), sigma=3.0)
    x = rep["inputs"]
    assert x.shape == (41, H, W) and x.dtype == np.float32
    person = _person().astype(np.float64)

    # Channels 0-2: agnostic RGB in [-1, 1]; gray 128 exactly where the label is 5 or 7.
    gray = 128 / 127.5 - 1
    for y in range(H):
        for xx in range(W):
            expected = [gray] * 3 if PARSE[y, xx] in (5, 7) else list(person[y, xx] / 127.5 - 1)
            np.testing.assert_allclose(x[0:3, y, xx], expected, atol=1e-6)
    np.testing.assert_array_equal(rep["agnostic"], x[0:3])

    # Channels 3-20: heatmaps. Only the nose (channel 3) is detected among the first 18.
    nx, ny, c = NOSE
    assert x[3, int(ny), int(nx)] == pytest.approx(c)
    assert x[3].max() == pytest.approx(c)
    assert x[3, 1, 3] == pytest.approx(c * math.exp(-1 / 18))  # one pixel right, sigma 3
    assert x[3, 0, 2] == pytest.approx(c * math.exp(-1 / 18))  # one pixel up
    assert x[3, 3, 4] == pytest.approx(c * math.exp(-8 / 18))  # (+2, +2)
    assert x[3, 7, 5] == pytest.approx(c * math.exp(-(9 + 36) / 18))
    assert not x[4:21].any(), "undetected r_shoulder, the l_ear (18) and feet must not appear"

    # Channels 21-40: one-hot, channel 21 + k is 1 exactly where the label is k.
    for k in range(20):
        np.testing.assert_array_equal(x[21 + k], (PARSE == k).astype(np.float32))

    np.testing.assert_allclose(rep["person"], person.transpose(2, 0, 1) / 127.5 - 1, atol=1e-6)
    assert rep["cloth"].shape == (3, H, W) and rep["cloth"][:, 0, 0] == pytest.approx([1.0, 1.0, 1.0])
    np.testing.assert_array_equal(rep["cloth_mask"][0], _sample().cloth_mask.astype(np.float32))
    assert rep["parse"].dtype == np.int64
    np.testing.assert_array_equal(rep["parse"], PARSE)


def test_split_representation_equals_the_loader_builder_on_a_batch():
    flipped = _sample()
    flipped = DecodedSample(person=flipped.person[:, ::-1].copy(), cloth=flipped.cloth, cloth_mask=flipped.cloth_mask,
                            parse=flipped.parse[::-1].copy(), pose=flipped.pose * np.float32([1.0, 1.0, 0.5]),
                            pose_format="body25", key="flipped")
    coco = np.zeros((18, 3), np.float32)
    coco[8], coco[11], coco[4] = (1.5, 4.0, 0.9), (4.5, 4.0, 0.6), (5.0, 3.0, 1.0)  # hips -> mid_hip
    third = DecodedSample(person=_person(), cloth=_sample().cloth, cloth_mask=_sample().cloth_mask,
                          parse=PARSE.copy(), pose=coco, pose_format="coco18", key="coco")
    samples = [_sample(), flipped, third]
    for sigma in (1.0, 3.0):
        for got, s in zip(_split_build(samples, sigma), samples):
            want = unet_sa_representation(s, sigma=sigma)
            assert sorted(got) == sorted(want)
            for k in want:
                assert got[k].shape == want[k].shape and got[k].dtype == want[k].dtype, k
                np.testing.assert_array_equal(got[k], want[k], err_msg=k)  # bit-identical


def test_split_representation_registry_and_label_check():
    assert get_representation("unet_sa") is UNET_SA and UNET_SA.has_device_form
    assert not get_representation("viton_hd").has_device_form
    with pytest.raises(ValueError, match=r"'viton_hd' has no device-side form.*representation_on='loader'"):
        get_representation("viton_hd").require_device_form()
    s = _sample()
    s.parse[0, 0] = 20
    with pytest.raises(ValueError, match=r"sample 'tiny' parse.*\[20\] out of range"):
        UNET_SA.compact_sample(s)


def test_heatmap_sigma_changes_spread_not_peak():
    heat = pose_heatmaps(np.array([[2.0, 3.0, 0.5]], np.float32), (H, W), sigma=1.0)
    assert heat[0, 3, 2] == pytest.approx(0.5)
    assert heat[0, 3, 3] == pytest.approx(0.5 * math.exp(-0.5))
    with pytest.raises(ValueError, match="sigma"):
        pose_heatmaps(np.zeros((1, 3), np.float32), (H, W), sigma=0)


def test_pose_disks_are_binary_and_skip_undetected_points():
    disks = pose_disks(np.array([[2.0, 3.0, 0.3], [1.0, 1.0, 0.0]], np.float32), (H, W), radius=1)
    expected = np.zeros((H, W), np.float32)
    for y, xx in [(3, 2), (2, 2), (4, 2), (3, 1), (3, 3)]:
        expected[y, xx] = 1
    np.testing.assert_array_equal(disks[0], expected)
    assert not disks[1].any()


def test_pose18_body25_takes_the_first_18():
    kp = np.arange(75, dtype=np.float32).reshape(25, 3)
    np.testing.assert_array_equal(pose18(kp, "body25"), kp[:18])
    assert POSE18_NAMES[8] == "mid_hip" and POSE18_NAMES[17] == "r_ear" and len(POSE18_NAMES) == 18


def test_pose18_coco18_maps_to_the_same_meanings():
    coco = np.zeros((18, 3), np.float32)
    coco[0] = (3, 1, 0.9)  # nose
    coco[8] = (2, 4, 0.6)  # r_hip
    coco[11] = (4, 4, 0.9)  # l_hip
    coco[16] = (1, 1, 0.5)  # r_ear
    coco[17] = (5, 1, 0.5)  # l_ear: not in the canonical 18
    out = pose18(coco, "coco18")
    names = dict(zip(POSE18_NAMES, out.tolist()))
    assert names["nose"] == pytest.approx([3, 1, 0.9])
    assert names["r_hip"] == pytest.approx([2, 4, 0.6])
    assert names["l_hip"] == pytest.approx([4, 4, 0.9])
    assert names["mid_hip"] == pytest.approx([3, 4, 0.6])  # midpoint, lower confidence
    assert names["r_ear"] == pytest.approx([1, 1, 0.5])
    assert not any(np.allclose(row, [5, 1, 0.5]) for row in out)

    coco[11] = 0  # one hip missing: mid_hip is undetected
    assert pose18(coco, "coco18")[POSE18_NAMES.index("mid_hip")].tolist() == [0, 0, 0]


def test_pose18_rejects_wrong_shapes_and_formats():
    with pytest.raises(ValueError, match=r"\(25, 3\)"):
        pose18(np.zeros((18, 3)), "body25")
    with pytest.raises(ValueError, match="coco17"):
        pose18(np.zeros((17, 3)), "coco17")


def test_parse_onehot_names_out_of_range_labels():
    bad = PARSE.copy()
    bad[0, 0] = 20
    bad[0, 1] = 255
    with pytest.raises(ValueError, match=r"\[20, 255\]"):
        parse_onehot(bad)
    onehot = parse_onehot(PARSE)
    assert onehot.shape == (20, H, W)
    np.testing.assert_array_equal(onehot.sum(0), np.ones((H, W)))


ALL_LIP = np.arange(20, dtype=np.uint8).reshape(4, 5)
# Written out from VITON-HD's datasets.py table: background [0, 10], hair [1, 2], face [4, 13],
# upper [5, 6, 7], bottom [9, 12], left_arm 14, right_arm 15, left_leg 16, right_leg 17,
# left_shoe 18, right_shoe 19, socks 8, noise [3, 11].
EXPECTED_13 = [0, 1, 1, 12, 2, 3, 3, 3, 11, 4, 0, 12, 4, 2, 5, 6, 7, 8, 9, 10]
# And through test.py's 7 groups: background [0], paste [2, 4, 7, 8, 9, 10, 11], upper [3],
# hair [1], left_arm [5], right_arm [6], noise [12].
EXPECTED_7 = [0, 3, 3, 6, 1, 2, 2, 2, 1, 1, 0, 6, 1, 1, 4, 5, 1, 1, 1, 1]


def test_viton_hd_13_and_7_groupings_on_every_lip_label():
    np.testing.assert_array_equal(parse_to_13(ALL_LIP).reshape(-1), EXPECTED_13)
    np.testing.assert_array_equal(parse_to_7(ALL_LIP).reshape(-1), EXPECTED_7)
    np.testing.assert_array_equal(parse13_to_7(np.array([[3, 1, 12, 10]])), [[2, 3, 6, 1]])


def test_grouping_equals_summing_one_hot_channels_like_viton_hd():
    """VITON-HD builds its 13-channel map by adding LIP one-hot channels group by group."""
    groups = [[0, 10], [1, 2], [4, 13], [5, 6, 7], [9, 12], [14], [15], [16], [17], [18], [19], [8], [3, 11]]
    lip = parse_onehot(ALL_LIP)
    summed = np.stack([sum(lip[k] for k in g) for g in groups])
    np.testing.assert_array_equal(parse_onehot(parse_to_13(ALL_LIP), 13), summed)
    with pytest.raises(ValueError, match=r"\[13\]"):
        parse13_to_7(np.array([[13]]))


def test_garment_and_agnostic_masks():
    garment = garment_mask(PARSE)
    np.testing.assert_array_equal(garment, np.isin(PARSE, (5, 7)).astype(np.uint8))
    keep = agnostic_mask(PARSE)
    np.testing.assert_array_equal(keep, ((PARSE > 0) & ~np.isin(PARSE, (5, 7))).astype(np.uint8))
    assert not (garment & keep).any()
    agn = cloth_agnostic_rgb(_person(), PARSE)
    assert (agn[3, 2] == 128).all() and (agn[3, 0] == _person()[3, 0]).all()  # coat gray, arm kept


def test_keypoints_from_openpose_accepts_both_keys_and_no_people():
    kp = np.arange(75, dtype=np.float32)
    doc = {"people": [{"pose_keypoints_2d": kp.tolist()}]}
    np.testing.assert_array_equal(keypoints_from_openpose(doc, "body25"), kp.reshape(25, 3))
    old = {"people": [{"pose_keypoints": kp[:54].tolist()}]}
    assert keypoints_from_openpose(old, "coco18").shape == (18, 3)
    assert not keypoints_from_openpose({"people": []}, "body25").any()
    with pytest.raises(ValueError, match=r"x_keypoints\.json.*54 values, expected 75"):
        keypoints_from_openpose(old, "body25", source="x_keypoints.json")


def test_decoded_sample_validates_shapes_and_registry_names_builders():
    s = _sample()
    with pytest.raises(ValueError, match=r"sample 'bad': parse has shape \(8, 5\)"):
        DecodedSample(person=s.person, cloth=s.cloth, cloth_mask=s.cloth_mask, parse=s.parse[:, :5],
                      pose=s.pose, pose_format="body25", key="bad")
    with pytest.raises(ValueError, match=r"pose has shape \(25, 3\), expected \(18, 3\)"):
        DecodedSample(person=s.person, cloth=s.cloth, cloth_mask=s.cloth_mask, parse=s.parse,
                      pose=s.pose, pose_format="coco18")
    assert "unet_sa" in REPRESENTATIONS
    rep = get_representation("unet_sa")(s, sigma=3.0)
    assert rep["inputs"].shape == (41, H, W)
    with pytest.raises(ValueError, match=r"'nope'.*unet_sa"):
        get_representation("nope")
