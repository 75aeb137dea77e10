"""VITON-HD's inputs (seed 001): parse-agnostic, image-agnostic, rendered pose, 13/7-class parse maps.

Behaviour follows shadow2496/VITON-HD ``datasets.py`` (get_parse_agnostic / get_img_agnostic); its
drawing radii are in pixels at 768 px width, so we scale them by ``width / 768`` (identical at the
official 1024x768, sensible at test sizes where the official radii would cover the image).
"""

from __future__ import annotations

from typing import Mapping

import numpy as np

from vton_models.representation.base import Representation
from vton_models.representation.image import to_network_rgb
from vton_models.representation.parse import NUM_LIP_LABELS, check_labels, label_lut, parse_onehot
from vton_models.representation.pose import is_missing, openpose_xy
from vton_models.representation.render import render_pose
from vton_models.representation.sample import DecodedSample

VITON_HD_REFERENCE_WIDTH = 768

#: VITON-HD's 13 parse groups over the 20 LIP labels (shadow2496/VITON-HD ``datasets.py``,
#: ``labels`` in ``__getitem__``; HR-VITON ``cp_dataset.py`` uses the same table). Label 10 is the
#: neck in VITON-HD's parse maps and is grouped with the background.
VITON_HD_13: tuple[tuple[str, tuple[int, ...]], ...] = (
    ("background", (0, 10)), ("hair", (1, 2)), ("face", (4, 13)), ("upper", (5, 6, 7)),
    ("bottom", (9, 12)), ("left_arm", (14,)), ("right_arm", (15,)), ("left_leg", (16,)),
    ("right_leg", (17,)), ("left_shoe", (18,)), ("right_shoe", (19,)), ("socks", (8,)),
    ("noise", (3, 11)),
)

#: VITON-HD's 7 groups over the 13 (``test.py``: what the ALIAS generator is conditioned on).
VITON_HD_7: tuple[tuple[str, tuple[int, ...]], ...] = (
    ("background", (0,)), ("paste", (2, 4, 7, 8, 9, 10, 11)), ("upper", (3,)), ("hair", (1,)),
    ("left_arm", (5,)), ("right_arm", (6,)), ("noise", (12,)),
)

_LUT_13 = label_lut(VITON_HD_13, NUM_LIP_LABELS)
_LUT_13_TO_7 = label_lut(VITON_HD_7, len(VITON_HD_13))


def parse_to_13(parse: np.ndarray) -> np.ndarray:
    """LIP (20) -> VITON-HD's 13 groups, as a label map (one-hot of it = VITON-HD's parse map)."""
    return _LUT_13[check_labels(parse, NUM_LIP_LABELS, "parse_to_13")]


def parse13_to_7(parse13: np.ndarray) -> np.ndarray:
    """VITON-HD 13 groups -> its 7 ALIAS groups (``test.py``), as a label map."""
    return _LUT_13_TO_7[check_labels(parse13, len(VITON_HD_13), "parse13_to_7")]


def parse_to_7(parse: np.ndarray) -> np.ndarray:
    """LIP (20) -> VITON-HD's 7 groups, through the 13 (the only path VITON-HD defines)."""
    return parse13_to_7(parse_to_13(parse))


_GRAY = (128, 128, 128)


def _px(value: float, scale: float) -> float:
    return value * scale


def viton_hd_parse_agnostic(parse: np.ndarray, xy: np.ndarray) -> np.ndarray:
    """(H, W) uint8 LIP labels with the try-on region removed (official ``get_parse_agnostic``).

    Upper clothes/dress/coat (5, 6, 7) and neck (10) become background; of each arm (14 left,
    15 right) only the part near the shoulder-elbow-wrist chain of the *opposite-side-indexed*
    keypoints is removed (the official pairing: label 14 with points 2, 5, 6, 7; 15 with 5, 2, 3, 4),
    so hands and forearms far from the garment stay.
    """
    from PIL import Image, ImageDraw

    labels = check_labels(parse, NUM_LIP_LABELS, "viton_hd_parse_agnostic")
    h, w = labels.shape
    s = w / VITON_HD_REFERENCE_WIDTH
    r = 10
    out = labels.copy()
    for parse_id, chain in ((14, (2, 5, 6, 7)), (15, (5, 2, 3, 4))):
        canvas = Image.new("L", (w, h), 0)
        draw = ImageDraw.Draw(canvas)
        prev = chain[0]
        for i in chain[1:]:
            if is_missing(xy, prev) or is_missing(xy, i):
                continue
            draw.line([tuple(xy[prev]), tuple(xy[i])], fill=255, width=max(int(round(r * 10 * s)), 1))
            radius = _px(r * 4 if i == chain[-1] else r * 15, s)
            x, y = xy[i]
            draw.ellipse((x - radius, y - radius, x + radius, y + radius), fill=255, outline=255)
            prev = i
        out[(np.asarray(canvas) > 0) & (labels == parse_id)] = 0
    out[np.isin(labels, (5, 6, 7, 10))] = 0
    return out


def viton_hd_img_agnostic(person: np.ndarray, parse: np.ndarray, xy: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8: the person with torso, arms and neck painted gray (official ``get_img_agnostic``).

    Gray shapes are drawn from the pose (arm capsules, a torso polygon with hips widened to shoulder
    width, a neck square), then head (4, 13) and lower body (9, 12, 16-19) are pasted back from the
    original. Differences from the official code, only where it would produce NaNs: if the two hips
    coincide (e.g. both undetected) the hip widening is skipped instead of dividing by zero.
    """
    from PIL import Image, ImageDraw

    labels = check_labels(parse, NUM_LIP_LABELS, "viton_hd_img_agnostic")
    if person.shape[:2] != labels.shape:
        raise ValueError(f"viton_hd_img_agnostic: person {person.shape[:2]} and parse {labels.shape} differ in size")
    h, w = labels.shape
    s = w / VITON_HD_REFERENCE_WIDTH
    r = 20
    pts = xy.astype(np.float64).copy()
    length_a = np.linalg.norm(pts[5] - pts[2])
    length_b = np.linalg.norm(pts[12] - pts[9])
    if length_b > 0:
        mid = (pts[9] + pts[12]) / 2
        pts[9] = mid + (pts[9] - mid) / length_b * length_a
        pts[12] = mid + (pts[12] - mid) / length_b * length_a
    img = Image.fromarray(np.ascontiguousarray(person, dtype=np.uint8))
    draw = ImageDraw.Draw(img)

    def width(k: float) -> int:
        return max(int(round(r * k * s)), 1)

    def disk(i: int, rx: float, ry: float) -> None:
        x, y = pts[i]
        draw.ellipse((x - rx, y - ry, x + rx, y + ry), fill=_GRAY, outline=_GRAY)

    def line(i: int, j: int, k: float) -> None:
        draw.line([tuple(pts[i]), tuple(pts[j])], fill=_GRAY, width=width(k))

    line(2, 5, 10)
    for i in (2, 5):
        disk(i, r * 5 * s, r * 5 * s)
    for i in (3, 4, 6, 7):
        if is_missing(pts, i - 1) or is_missing(pts, i):
            continue
        line(i - 1, i, 10)
        disk(i, r * 5 * s, r * 5 * s)
    for i in (9, 12):
        disk(i, r * 3 * s, r * 6 * s)
    line(2, 9, 6)
    line(5, 12, 6)
    line(9, 12, 12)
    draw.polygon([tuple(pts[i]) for i in (2, 5, 12, 9)], fill=_GRAY, outline=_GRAY)
    x, y = pts[1]
    half = r * 7 * s
    draw.rectangle((x - half, y - half, x + half, y + half), fill=_GRAY, outline=_GRAY)
    out = np.asarray(img).copy()
    keep = np.isin(labels, (4, 13, 9, 12, 16, 17, 18, 19))
    out[keep] = person[keep]
    return out


def viton_hd_representation(sample: DecodedSample, sigma: float | None = None) -> dict[str, np.ndarray]:
    """What VITON-HD's ``datasets.py`` gives its networks, plus the training targets its stages need.

    ``parse_agnostic`` (13): one-hot of the 13-grouped parse-agnostic map; ``img_agnostic`` (3) and
    ``pose_img`` (3) in [-1, 1] (the dataset's OpenPose rendering when the sample carries one, as
    the official networks were trained on; else our own drawing, see ``pose_image_source``); ``cloth`` (3), ``cloth_mask`` (1); targets ``person`` (3), ``parse13``
    (13) and ``parse7`` (7) one-hots of the ground-truth parse, ``parse_cloth`` (1: the 7-class upper
    region), ``warped_cloth`` (3: the worn garment on white, what the GMM's warp should produce);
    ``agnostic`` (3) = ``img_agnostic`` for sample grids; ``parse`` (H, W) the LIP labels, which
    evaluation's masked metrics read from every representation. ``sigma`` is accepted because the loader
    passes it to every builder; VITON-HD uses a rendered pose image, not Gaussian heatmaps.
    """
    del sigma
    xy = openpose_xy(sample.pose, sample.pose_format)
    parse_ag = viton_hd_parse_agnostic(sample.parse, xy)
    img_ag = to_network_rgb(viton_hd_img_agnostic(sample.person, sample.parse, xy))
    parse13 = parse_to_13(sample.parse)
    parse7 = parse13_to_7(parse13)
    upper = (parse7 == 2).astype(np.float32)[None]
    person = to_network_rgb(sample.person)
    return {
        "parse_agnostic": parse_onehot(parse_to_13(parse_ag), len(VITON_HD_13)),
        "img_agnostic": img_ag,
        "pose_img": to_network_rgb(sample.pose_img if sample.pose_img is not None
                                   else render_pose(xy, sample.size, VITON_HD_REFERENCE_WIDTH)),
        "cloth": to_network_rgb(sample.cloth),
        "cloth_mask": (np.asarray(sample.cloth_mask) > 0).astype(np.float32)[None],
        "person": person,
        "parse13": parse_onehot(parse13, len(VITON_HD_13)),
        "parse7": parse_onehot(parse7, len(VITON_HD_7)),
        "parse_cloth": upper,
        "warped_cloth": (person * upper + (1.0 - upper)).astype(np.float32),
        "agnostic": img_ag,
        "parse": np.asarray(sample.parse).astype(np.int64),  # LIP labels: evaluation's masked metrics
    }


def pose_image_source(members: Mapping[str, int] | None, samples: int) -> dict[str, str]:
    """Run tag saying where ``pose_img`` comes from: the dataset's OpenPose rendering (what the
    official weights expect), our own drawing, or a mix; from a manifest's member counts."""
    rendered = (members or {}).get("pose_img.png", 0)
    if members is None:
        source = "drawn (manifest v1: written before rendered poses were carried)"
    elif rendered >= samples:
        source = "dataset"
    elif rendered == 0:
        source = "drawn"
    else:
        source = f"mixed ({rendered} of {samples} samples from the dataset, the rest drawn)"
    return {"vton.data.pose_img": source}


#: Built whole in the loader (drawing with PIL has no device form).
VITON_HD = Representation("viton_hd", build=viton_hd_representation, reads=("pose_img.png", "cloth_mask.png"),
                          describe_data=pose_image_source)
