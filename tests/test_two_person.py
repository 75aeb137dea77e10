"""Two-person (multi-pose) samples through the augmenter: one flip and one photometric draw for
both persons and the garment, each person's geometry aligned with its own parse and pose, and
``swap_p`` exchanging exactly the two persons. Hand-made masks and points, so what "aligned" means
is visible in the test."""

from __future__ import annotations

import numpy as np
import pytest

from shards.transforms import Augmenter, hflip_sample, resize_sample, swap_persons
from vton_models.representation.pose import COCO18_NAMES
from vton_models.representation.sample import DecodedSample, PersonView

H, W = 64, 48
L_ARM, R_ARM, FACE = 14, 15, 13
BLOB = 4  # half-size of each hand-made body-part blob


def _person(points: dict[str, tuple[int, int]], labels: dict[str, int], shade: int) -> PersonView:
    """A person whose named keypoints each sit at the centre of a square blob of its label."""
    img = np.full((H, W, 3), 255, np.uint8)
    parse = np.zeros((H, W), np.uint8)
    pose = np.zeros((18, 3), np.float32)
    for name, (x, y) in points.items():
        parse[y - BLOB:y + BLOB + 1, x - BLOB:x + BLOB + 1] = labels[name]
        img[y - BLOB:y + BLOB + 1, x - BLOB:x + BLOB + 1] = (shade, 40 + labels[name], 90)
        pose[COCO18_NAMES.index(name)] = (x, y, 1.0)
    return PersonView(person=img, parse=parse, pose=pose, pose_format="coco18")


LABELS = {"nose": FACE, "l_wrist": L_ARM, "r_wrist": R_ARM}
SOURCE = _person({"nose": (24, 10), "l_wrist": (36, 40), "r_wrist": (12, 40)}, LABELS, shade=30)
TARGET = _person({"nose": (20, 12), "l_wrist": (34, 28), "r_wrist": (9, 45)}, LABELS, shade=200)


def _sample() -> DecodedSample:
    cloth = np.full((H, W, 3), 255, np.uint8)
    cloth[10:50, 10:30] = (200, 30, 30)  # asymmetric: a flip is visible on the garment too
    return DecodedSample(person=SOURCE.person.copy(), cloth=cloth, cloth_mask=(cloth[..., 1] < 255).astype(np.uint8),
                         parse=SOURCE.parse.copy(), pose=SOURCE.pose.copy(), pose_format="coco18", key="pair",
                         target=PersonView(TARGET.person.copy(), TARGET.parse.copy(), TARGET.pose.copy(), "coco18"))


def _aligned(view: PersonView | DecodedSample) -> dict[str, int]:
    """Label under each detected keypoint: alignment means it is the label the point was drawn in."""
    out = {}
    for name in LABELS:
        x, y, c = view.pose[COCO18_NAMES.index(name)]
        if c > 0:
            out[name] = int(view.parse[int(round(y)), int(round(x))])
    return out


def test_flip_swaps_left_and_right_in_both_persons_and_mirrors_the_garment():
    flipped = hflip_sample(_sample())
    for before, after in ((SOURCE, flipped), (TARGET, flipped.target)):
        l_wrist = after.pose[COCO18_NAMES.index("l_wrist")]
        r_before = before.pose[COCO18_NAMES.index("r_wrist")]
        assert l_wrist[0] == W - 1 - r_before[0] and l_wrist[1] == r_before[1], "the right wrist became the left"
        assert _aligned(after) == {"nose": FACE, "l_wrist": L_ARM, "r_wrist": R_ARM}
        assert (after.parse == L_ARM).sum() == (before.parse == R_ARM).sum()
    np.testing.assert_array_equal(flipped.cloth, _sample().cloth[:, ::-1])


@pytest.mark.parametrize("seed", range(6))
def test_affine_keeps_each_persons_parse_and_pose_aligned_with_their_own_draw(seed):
    aug = Augmenter((H, W), options={"affine_p": 1.0, "hflip_p": 0.5, "color_jitter_p": 0.0, "blur_p": 0.0,
                                     "rotate": 10.0, "translate": 0.08, "scale": (0.9, 1.1)})
    out = aug(_sample(), seed=[seed, 1])
    for view in (out, out.target):
        aligned = _aligned(view)
        assert aligned, "some keypoints stay in the frame"
        assert all(label == LABELS[name] for name, label in aligned.items()), aligned
    assert not np.array_equal(out.pose, SOURCE.pose) and not np.array_equal(out.pose, hflip_sample(_sample()).pose)
    # Independent draws: the target did not simply receive the source's displacement.
    d_source = out.pose[0, :2] - SOURCE.pose[0, :2]
    d_target = out.target.pose[0, :2] - TARGET.pose[0, :2]
    assert not np.allclose(d_source, d_target)


def test_one_photometric_draw_for_both_persons_and_the_cloth():
    colour = np.zeros((H, W, 3), np.uint8)
    colour[:] = (120, 80, 60)
    base = _sample()
    sample = DecodedSample(person=colour.copy(), cloth=colour.copy(), cloth_mask=base.cloth_mask, parse=base.parse,
                           pose=base.pose, pose_format="coco18", key="pair",
                           target=PersonView(colour.copy(), TARGET.parse, TARGET.pose, "coco18"))
    aug = Augmenter((H, W), options={"color_jitter_p": 1.0, "blur_p": 0.0})
    changed = 0
    for seed in range(5):
        out = aug(sample, seed=seed)
        np.testing.assert_array_equal(out.person, out.target.person)
        np.testing.assert_array_equal(out.person, out.cloth)
        changed += int(not np.array_equal(out.person, colour))
    assert changed >= 3, "colour jitter with p=1 must change the colour"


def test_swap_exchanges_exactly_the_two_persons():
    swapped = swap_persons(_sample())
    np.testing.assert_array_equal(swapped.person, TARGET.person)
    np.testing.assert_array_equal(swapped.parse, TARGET.parse)
    np.testing.assert_array_equal(swapped.pose, TARGET.pose)
    np.testing.assert_array_equal(swapped.target.person, SOURCE.person)
    np.testing.assert_array_equal(swapped.target.pose, SOURCE.pose)
    np.testing.assert_array_equal(swapped.cloth, _sample().cloth)
    assert swap_persons(swap_persons(_sample())).key == "pair"
    never = Augmenter((H, W), options={"swap_p": 0.0, "color_jitter_p": 0.0, "blur_p": 0.0})
    always = Augmenter((H, W), options={"swap_p": 1.0, "color_jitter_p": 0.0, "blur_p": 0.0})
    half = Augmenter((H, W), options={"swap_p": 0.5, "color_jitter_p": 0.0, "blur_p": 0.0})
    for seed in range(4):
        np.testing.assert_array_equal(never(_sample(), seed).pose, SOURCE.pose)
        np.testing.assert_array_equal(always(_sample(), seed).pose, TARGET.pose)
    picks = [np.array_equal(half(_sample(), s).pose, TARGET.pose) for s in range(40)]
    assert 8 < sum(picks) < 32, "swap_p=0.5 swaps about half the time"
    assert picks == [np.array_equal(half(_sample(), s).pose, TARGET.pose) for s in range(40)], "deterministic per seed"


def test_resize_scales_both_persons_and_one_person_samples_draw_as_before():
    small = resize_sample(_sample(), (32, 24))
    assert small.target.person.shape == (32, 24, 3) and small.target.parse.shape == (32, 24)
    assert _aligned(small.target) == {"nose": FACE, "l_wrist": L_ARM, "r_wrist": R_ARM}
    single = DecodedSample(person=SOURCE.person, cloth=SOURCE.person, cloth_mask=SOURCE.parse > 0, parse=SOURCE.parse,
                           pose=SOURCE.pose, pose_format="coco18")
    aug = Augmenter((H, W), options={"affine_p": 1.0, "hflip_p": 0.5, "swap_p": 1.0})
    again = Augmenter((H, W), options={"affine_p": 1.0, "hflip_p": 0.5})
    np.testing.assert_array_equal(aug(single, 3).person, again(single, 3).person)
