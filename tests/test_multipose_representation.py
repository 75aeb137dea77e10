"""The ``multipose`` representation (seeds 002 and 004) on synthetic MPV triplets: the source's
inputs, the target pose, and the target's ground truth, each computed from the right person."""

from __future__ import annotations

import numpy as np
import pytest

import vton_models  # noqa: F401
from plugins.data import decoded_samples
from vton_models.representation.multipose import MULTIPOSE, target_pose_disks
from vton_models.representation.pose import pose_coco18


@pytest.fixture(scope="module")
def samples(tmp_path_factory):
    from shards.synthetic import synthesize_layout

    root = tmp_path_factory.mktemp("multipose")
    synthesize_layout("mpv", root, n=4, size=(64, 48), seed=3)
    return decoded_samples(root, "mpv_triplets")


def test_inputs_come_from_the_source_and_ground_truth_from_the_target(samples):
    sample = samples[0]
    arrays = MULTIPOSE(sample)
    shapes = {k: v.shape for k, v in arrays.items()}
    assert shapes == {
        "src_person": (3, 64, 48), "src_parse_onehot": (20, 64, 48), "src_agnostic": (3, 64, 48), "face_box_src": (4,),
        "tgt_pose": (18, 64, 48), "cloth": (3, 64, 48), "cloth_mask": (1, 64, 48), "person": (3, 64, 48),
        "parse": (64, 48), "tgt_parse_onehot": (20, 64, 48), "tgt_cloth_region": (1, 64, 48),
        "tgt_cloth_rgb": (3, 64, 48), "face_box_tgt": (4,)}
    assert all(v.dtype == np.float32 for k, v in arrays.items() if k != "parse") and arrays["parse"].dtype == np.int64
    target = sample.target
    assert not np.array_equal(sample.person, target.person)  # two photos
    np.testing.assert_array_equal(arrays["person"], target.person.transpose(2, 0, 1) / np.float32(127.5) - 1)
    np.testing.assert_array_equal(arrays["parse"], target.parse)
    np.testing.assert_array_equal(arrays["tgt_parse_onehot"].argmax(0), target.parse)
    np.testing.assert_array_equal(arrays["src_parse_onehot"].argmax(0), sample.parse)
    np.testing.assert_array_equal(arrays["tgt_pose"], target_pose_disks(target.pose, "coco18", (64, 48)))
    assert not np.array_equal(arrays["tgt_pose"], target_pose_disks(sample.pose, "coco18", (64, 48)))

    garment = np.isin(sample.parse, (5, 6, 7))
    assert garment.any() and (arrays["src_agnostic"][:, garment] == 0).all()  # garment gone, mid-gray
    np.testing.assert_array_equal(arrays["src_agnostic"][:, ~garment], arrays["src_person"][:, ~garment])
    region = np.isin(target.parse, (5, 6, 7))
    np.testing.assert_array_equal(arrays["tgt_cloth_region"][0], region)
    assert (arrays["tgt_cloth_rgb"][:, ~region] == 1).all()  # on white
    np.testing.assert_array_equal(arrays["tgt_cloth_rgb"][:, region], arrays["person"][:, region])

    # Face boxes: square, inside the image; the source's around its parsed hair and face, the
    # target's around its head keypoints (its parse is not an input at inference).
    for key in ("face_box_src", "face_box_tgt"):
        x0, y0, x1, y1 = arrays[key]
        assert 0 <= x0 < x1 <= 48 and 0 <= y0 < y1 <= 64 and x1 - x0 == pytest.approx(y1 - y0)
    x0, y0, x1, y1 = arrays["face_box_src"]
    ys, xs = np.nonzero(np.isin(sample.parse, (2, 13)))
    assert x0 <= xs.min() and xs.max() + 1 <= x1 and y0 <= ys.min() and ys.max() + 1 <= y1
    x0, y0, x1, y1 = arrays["face_box_tgt"]
    head = target.pose[[0, 14, 15, 16, 17]]
    head = head[head[:, 2] > 0]
    assert len(head) and ((head[:, 0] >= x0) & (head[:, 0] < x1) & (head[:, 1] >= y0) & (head[:, 1] < y1)).all()


def test_disks_are_coco18_radius_4_at_192_and_a_one_person_sample_is_refused(samples):
    sample = samples[0]
    pose = np.zeros((18, 3), np.float32)
    pose[1] = (20, 32, 1)  # the neck only
    disks = target_pose_disks(pose, "coco18", (256, 192))
    assert disks[1].sum() == disks.sum() == 49  # x^2 + y^2 <= 16: a radius-4 disk
    assert disks[1, 32, 24] == 1 and disks[1, 32, 25] == 0
    assert target_pose_disks(pose * [0.25, 0.25, 1], "coco18", (64, 48)).sum() == 5  # radius 1 at 48 px
    np.testing.assert_array_equal(pose_coco18(sample.target.pose, "coco18"), sample.target.pose)

    import dataclasses

    with pytest.raises(ValueError, match="needs a two-person sample"):
        MULTIPOSE(dataclasses.replace(sample, target=None))
