"""Person representations built in the loader workers from one decoded sample.

Shards hold raw modalities; each family turns them into its own inputs here, on the CPU workers,
so the training step only concatenates tensors. Everything is plain numpy (float32 CHW outputs),
which keeps the builders cheap to test by hand and usable from any data pipeline.

Conventions
-----------
* Keypoints are ``(x, y, c)`` in pixel coordinates of the *current* image (pixel centres at
  integer coordinates, as OpenPose writes them); ``c == 0`` means "not detected" and such a
  point contributes nothing, whatever its x, y.
* The canonical 18-keypoint order is the one seed paper 000 feeds its network: the *first 18*
  BODY_25 joints (``POSE18_NAMES``). The paper says it drops "the foot keypoints (19-24)", but the
  first 18 are indices 0-17, so ``l_ear`` (18) is dropped as well and ``mid_hip`` (8) is kept; we
  follow the tensor the paper actually builds (``P = [H_0..H_17]``). COCO-18 poses are mapped to
  the same meanings: ``mid_hip`` is the midpoint of the two hips (confidence = the lower of the two,
  0 if either is missing) and COCO's ``l_ear`` is dropped.
* Images in network space are ``x / 127.5 - 1`` (the paper's ``(x/255 - 0.5) / 0.5``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping

import numpy as np

POSE_FORMATS: dict[str, int] = {"body25": 25, "coco18": 18}

#: The canonical 18 keypoints (= BODY_25 indices 0-17).
POSE18_NAMES: tuple[str, ...] = (
    "nose", "neck", "r_shoulder", "r_elbow", "r_wrist", "l_shoulder", "l_elbow", "l_wrist",
    "mid_hip", "r_hip", "r_knee", "r_ankle", "l_hip", "l_knee", "l_ankle", "r_eye", "l_eye", "r_ear",
)
#: COCO-18 index for each canonical keypoint; None = derived (mid_hip).
_COCO18_TO_POSE18: tuple[int | None, ...] = (0, 1, 2, 3, 4, 5, 6, 7, None, 8, 9, 10, 11, 12, 13, 14, 15, 16)
_COCO_R_HIP, _COCO_L_HIP = 8, 11

NUM_LIP_LABELS = 20
#: Seed paper 000 (eq. 9): the garment region is upper-clothes (5) and coat (7) only; arms, neck
#: and dress are kept, so the person's skin and identity stay visible.
GARMENT_LABELS: tuple[int, ...] = (5, 7)
AGNOSTIC_GRAY = 128

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


def _lut(groups: tuple[tuple[str, tuple[int, ...]], ...], size: int) -> np.ndarray:
    table = np.full(size, 255, np.uint8)
    for new, (_, olds) in enumerate(groups):
        table[list(olds)] = new
    assert (table != 255).all(), "grouping does not cover every label"
    return table


_LUT_13 = _lut(VITON_HD_13, NUM_LIP_LABELS)
_LUT_13_TO_7 = _lut(VITON_HD_7, len(VITON_HD_13))


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


def keypoints_from_openpose(doc: Mapping[str, Any], fmt: str, source: str = "pose.json") -> np.ndarray:
    """(K, 3) float32 from an OpenPose JSON document; all zeros when nobody was detected.

    Accepts ``pose_keypoints_2d`` (OpenPose >= 1.2, VITON-HD) and ``pose_keypoints`` (the older
    key in VITON/CP-VTON and MPV files). The first person is used, as every public loader does.
    """
    if fmt not in POSE_FORMATS:
        raise ValueError(f"{source}: unknown pose format {fmt!r}; allowed: {sorted(POSE_FORMATS)}")
    k = POSE_FORMATS[fmt]
    people = doc.get("people")
    if not isinstance(people, list):
        raise ValueError(f"{source}: no 'people' list in OpenPose JSON")
    if not people:
        return np.zeros((k, 3), np.float32)
    person = people[0]
    flat = person.get("pose_keypoints_2d", person.get("pose_keypoints"))
    if flat is None:
        raise ValueError(f"{source}: people[0] has neither 'pose_keypoints_2d' nor 'pose_keypoints'")
    if len(flat) != 3 * k:
        raise ValueError(f"{source}: people[0] pose has {len(flat)} values, expected {3 * k} for {fmt}")
    return np.asarray(flat, np.float32).reshape(k, 3)


def pose18(keypoints: np.ndarray, fmt: str) -> np.ndarray:
    """(18, 3) float32 in the canonical order ``POSE18_NAMES`` (see the module docstring)."""
    if fmt not in POSE_FORMATS:
        raise ValueError(f"unknown pose format {fmt!r}; allowed: {sorted(POSE_FORMATS)}")
    kp = np.asarray(keypoints, np.float32)
    if kp.shape != (POSE_FORMATS[fmt], 3):
        raise ValueError(f"pose18: {fmt} keypoints must have shape ({POSE_FORMATS[fmt]}, 3), got {kp.shape}")
    if fmt == "body25":
        return kp[:18].copy()
    out = np.zeros((18, 3), np.float32)
    for i, j in enumerate(_COCO18_TO_POSE18):
        if j is not None:
            out[i] = kp[j]
    r, l = kp[_COCO_R_HIP], kp[_COCO_L_HIP]
    if r[2] > 0 and l[2] > 0:
        out[POSE18_NAMES.index("mid_hip")] = ((r[0] + l[0]) / 2, (r[1] + l[1]) / 2, min(r[2], l[2]))
    return out


def pose_profiles(pose: np.ndarray, size: tuple[int, int],
                  sigma: float = 3.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The factors of every heatmap: ``gy`` (K, H) = ``exp(-(y - y_k)^2 / 2 sigma^2)``, ``gx`` (K, W)
    likewise in x, and the confidences ``c`` (K,), so that heatmap k = ``(gy[k, :, None] *
    gx[k, None, :]) * c[k]`` (two float32 roundings, in that order).

    Undetected points (c <= 0) get zero rows and a zero confidence. The split form of ``unet_sa``
    ships these (a few KB) instead of the maps; the device repeats the same two products, so its
    maps are bit-identical to ``pose_heatmaps``.
    """
    h, w = size
    if sigma <= 0:
        raise ValueError(f"pose_heatmaps: sigma must be > 0, got {sigma}")
    pose = np.asarray(pose, np.float32)
    seen = pose[:, 2] > 0
    denom = np.float32(2.0 * sigma * sigma)
    gy = np.zeros((len(pose), h), np.float32)
    gx = np.zeros((len(pose), w), np.float32)
    ys = np.arange(h, dtype=np.float32)
    xs = np.arange(w, dtype=np.float32)
    for i in np.flatnonzero(seen):
        x, y = pose[i, 0], pose[i, 1]
        gy[i] = np.exp(-((ys - y) ** 2) / denom)
        gx[i] = np.exp(-((xs - x) ** 2) / denom)
    return gy, gx, np.where(seen, pose[:, 2], np.float32(0)).astype(np.float32)


def pose_heatmaps(pose: np.ndarray, size: tuple[int, int], sigma: float = 3.0,
                  out: np.ndarray | None = None) -> np.ndarray:
    """(K, H, W) float32: ``c_i * exp(-d^2 / (2 sigma^2))`` per keypoint (paper 000, eq. 7).

    The peak equals the confidence at the keypoint's pixel; undetected points (c <= 0) give a zero
    channel. Separable (``pose_profiles``): one outer product per keypoint instead of a full
    distance map, written into ``out`` (e.g. a slice of the sample's input tensor) so loader
    workers allocate nothing per map.
    """
    gy, gx, c = pose_profiles(pose, size, sigma)
    if out is None:
        out = np.empty((len(gy), gy.shape[1], gx.shape[1]), np.float32)
    np.multiply(gy[:, :, None], gx[:, None, :], out=out)
    out *= c[:, None, None]
    return out


def pose_disks(pose: np.ndarray, size: tuple[int, int], radius: float = 4) -> np.ndarray:
    """(K, H, W) float32: 1 within ``radius`` pixels of each detected keypoint (SPG-VTON, CP-VTON).

    Binary, not confidence-scaled: the disk encodes where a joint is, not how sure the detector was.
    """
    h, w = size
    pose = np.asarray(pose, np.float32)
    out = np.zeros((len(pose), h, w), np.float32)
    ys = np.arange(h, dtype=np.float32)[:, None]
    xs = np.arange(w, dtype=np.float32)[None, :]
    for i, (x, y, c) in enumerate(pose):
        if c > 0:
            out[i] = ((xs - x) ** 2 + (ys - y) ** 2 <= radius * radius).astype(np.float32)
    return out


def _check_labels(parse: np.ndarray, num_classes: int, what: str) -> np.ndarray:
    labels = np.asarray(parse)
    if labels.ndim != 2:
        raise ValueError(f"{what}: label map must be (H, W), got shape {labels.shape}")
    bad = (labels < 0) | (labels >= num_classes)
    if bad.any():
        values = sorted(int(v) for v in np.unique(labels[bad]))
        raise ValueError(f"{what}: label values {values} out of range 0..{num_classes - 1} "
                         f"({int(bad.sum())} pixels)")
    return labels


def parse_onehot(parse: np.ndarray, num_classes: int = NUM_LIP_LABELS, out: np.ndarray | None = None) -> np.ndarray:
    """(C, H, W) float32 with channel k = 1 exactly where the label is k (scattered by index into
    ``out`` when given: one write per pixel instead of C comparisons)."""
    labels = _check_labels(parse, num_classes, "parse_onehot")
    h, w = labels.shape
    if out is None:
        out = np.empty((num_classes, h, w), np.float32)
    out.fill(0.0)
    flat = out.reshape(num_classes, h * w)
    flat[labels.reshape(-1).astype(np.intp), np.arange(h * w)] = 1.0
    return out


def parse_to_13(parse: np.ndarray) -> np.ndarray:
    """LIP (20) -> VITON-HD's 13 groups, as a label map (one-hot of it = VITON-HD's parse map)."""
    return _LUT_13[_check_labels(parse, NUM_LIP_LABELS, "parse_to_13")]


def parse13_to_7(parse13: np.ndarray) -> np.ndarray:
    """VITON-HD 13 groups -> its 7 ALIAS groups (``test.py``), as a label map."""
    return _LUT_13_TO_7[_check_labels(parse13, len(VITON_HD_13), "parse13_to_7")]


def parse_to_7(parse: np.ndarray) -> np.ndarray:
    """LIP (20) -> VITON-HD's 7 groups, through the 13 (the only path VITON-HD defines)."""
    return parse13_to_7(parse_to_13(parse))


def garment_mask(parse: np.ndarray, labels: tuple[int, ...] = GARMENT_LABELS) -> np.ndarray:
    """(H, W) uint8 0/1: the region replaced by gray (paper 000, eq. 4/9)."""
    return np.isin(_check_labels(parse, NUM_LIP_LABELS, "garment_mask"), labels).astype(np.uint8)


def agnostic_mask(parse: np.ndarray, labels: tuple[int, ...] = GARMENT_LABELS) -> np.ndarray:
    """(H, W) uint8 0/1: the person pixels a try-on must *keep* (paper 000, eq. 5: P > 0 and not garment).

    Note the opposite convention of the ``agnostic-mask/`` folder of VITON-HD derivatives, which
    marks the region to inpaint; that one is ``garment_mask`` here.
    """
    labels_map = _check_labels(parse, NUM_LIP_LABELS, "agnostic_mask")
    return ((labels_map > 0) & ~np.isin(labels_map, labels)).astype(np.uint8)


def cloth_agnostic_rgb(person: np.ndarray, parse: np.ndarray, labels: tuple[int, ...] = GARMENT_LABELS,
                       fill: int = AGNOSTIC_GRAY) -> np.ndarray:
    """(H, W, 3) uint8: the person with the garment region filled gray (paper 000, eq. 10)."""
    if person.shape[:2] != np.shape(parse):
        raise ValueError(f"cloth_agnostic_rgb: person {person.shape[:2]} and parse {np.shape(parse)} differ in size")
    out = person.copy()
    out[garment_mask(parse, labels).astype(bool)] = fill
    return out


def to_network_rgb(img: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """(H, W, 3) uint8 -> (3, H, W) float32 in [-1, 1] (into ``out`` when given)."""
    chw = np.asarray(img).transpose(2, 0, 1)
    if out is None:
        out = np.empty(chw.shape, np.float32)
    np.divide(chw, np.float32(127.5), out=out, casting="unsafe")
    out -= np.float32(1.0)
    return out


def unet_sa_representation(sample: DecodedSample, sigma: float = 3.0) -> dict[str, np.ndarray]:
    """Seed paper 000's inputs: ``inputs`` (41, H, W) = agnostic RGB [-1, 1] (0-2), 18 pose
    heatmaps [0, 1] (3-20, ``POSE18_NAMES`` order), 20-class parse one-hot (21-40); plus the
    targets and panels a recipe needs: ``person``, ``cloth``, ``agnostic`` (3, H, W) in [-1, 1],
    ``cloth_mask`` (1, H, W), ``parse`` (H, W) int64.
    """
    h, w = sample.size
    inputs = np.empty((3 + 18 + NUM_LIP_LABELS, h, w), np.float32)  # filled in place, channel block by block
    agnostic = inputs[0:3]
    to_network_rgb(cloth_agnostic_rgb(sample.person, sample.parse), out=agnostic)
    pose_heatmaps(pose18(sample.pose, sample.pose_format), (h, w), sigma=sigma, out=inputs[3:21])
    parse_onehot(sample.parse, NUM_LIP_LABELS, out=inputs[21:])
    return {
        "inputs": inputs,
        "person": to_network_rgb(sample.person),
        "cloth": to_network_rgb(sample.cloth),
        "cloth_mask": (np.asarray(sample.cloth_mask) > 0).astype(np.float32)[None],
        "agnostic": agnostic,
        "parse": np.asarray(sample.parse).astype(np.int64),
    }


#: Builder name -> function(sample, **options) -> dict of arrays. Recipes name theirs in
#: ``Recipe.representation``.
REPRESENTATIONS: dict[str, Callable[..., dict[str, np.ndarray]]] = {
    "unet_sa": unet_sa_representation,
}


def build_representation(name: str, sample: DecodedSample, **options: Any) -> dict[str, np.ndarray]:
    """Run the builder ``name``; unknown names fail with the list of registered ones."""
    try:
        builder = REPRESENTATIONS[name]
    except KeyError:
        raise ValueError(f"unknown representation {name!r}; registered: {sorted(REPRESENTATIONS)}") from None
    return builder(sample, **options)


# ---------------------------------------------------------------------------------------------
# VITON-HD (seed 001): parse-agnostic, image-agnostic, rendered pose, 13/7-class parse maps.
# Behaviour follows shadow2496/VITON-HD ``datasets.py`` (get_parse_agnostic / get_img_agnostic);
# its drawing radii are in pixels at 768 px width, so we scale them by ``width / 768`` (identical at
# the official 1024x768, sensible at test sizes where the official radii would cover the image).
# ---------------------------------------------------------------------------------------------

VITON_HD_REFERENCE_WIDTH = 768
_GRAY = (128, 128, 128)
#: OpenPose-style limbs over the canonical 18 points and one colour per limb (red -> magenta hue wheel).
_POSE_LIMBS: tuple[tuple[int, int], ...] = (
    (1, 8), (1, 2), (1, 5), (2, 3), (3, 4), (5, 6), (6, 7), (8, 9), (9, 10), (10, 11),
    (8, 12), (12, 13), (13, 14), (1, 0), (0, 15), (15, 17), (0, 16),
)


def _px(value: float, scale: float) -> float:
    return value * scale


def _openpose_xy(sample: DecodedSample) -> np.ndarray:
    """(18, 2) float64 pixel positions with undetected points at (0, 0), OpenPose's own convention,
    which the official code tests for (``x == 0 and y == 0``)."""
    kp = pose18(sample.pose, sample.pose_format).astype(np.float64)
    xy = kp[:, :2].copy()
    xy[kp[:, 2] <= 0] = 0.0
    return xy


def _missing(xy: np.ndarray, i: int) -> bool:
    return bool(xy[i, 0] == 0.0 and xy[i, 1] == 0.0)


def viton_hd_parse_agnostic(parse: np.ndarray, xy: np.ndarray) -> np.ndarray:
    """(H, W) uint8 LIP labels with the try-on region removed (official ``get_parse_agnostic``).

    Upper clothes/dress/coat (5, 6, 7) and neck (10) become background; of each arm (14 left,
    15 right) only the part near the shoulder-elbow-wrist chain of the *opposite-side-indexed*
    keypoints is removed (the official pairing: label 14 with points 2, 5, 6, 7; 15 with 5, 2, 3, 4),
    so hands and forearms far from the garment stay.
    """
    from PIL import Image, ImageDraw

    labels = _check_labels(parse, NUM_LIP_LABELS, "viton_hd_parse_agnostic")
    h, w = labels.shape
    s = w / VITON_HD_REFERENCE_WIDTH
    r = 10
    out = labels.copy()
    for parse_id, chain in ((14, (2, 5, 6, 7)), (15, (5, 2, 3, 4))):
        canvas = Image.new("L", (w, h), 0)
        draw = ImageDraw.Draw(canvas)
        prev = chain[0]
        for i in chain[1:]:
            if _missing(xy, prev) or _missing(xy, i):
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

    labels = _check_labels(parse, NUM_LIP_LABELS, "viton_hd_img_agnostic")
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
        if _missing(pts, i - 1) or _missing(pts, i):
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


def render_pose(xy: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(H, W, 3) uint8: an OpenPose-style skeleton on black (limbs as coloured lines, joints as dots).

    VITON-HD reads OpenPose's own ``*_rendered.png``; shards carry keypoints only, so we draw the
    same kind of picture. It is not pixel-identical to OpenPose's renderer (colours and line
    widths follow its BODY_25 scheme approximately); fine-tuning adapts to it, but evaluating
    imported official weights is best done on data whose pose image came from OpenPose.
    """
    import colorsys

    from PIL import Image, ImageDraw

    h, w = size
    s = w / VITON_HD_REFERENCE_WIDTH
    img = Image.new("RGB", (w, h), (0, 0, 0))
    draw = ImageDraw.Draw(img)
    n = len(_POSE_LIMBS)
    for k, (i, j) in enumerate(_POSE_LIMBS):
        if _missing(xy, i) or _missing(xy, j):
            continue
        rgb = tuple(int(255 * c) for c in colorsys.hsv_to_rgb(k / n, 1.0, 1.0))
        draw.line([tuple(xy[i]), tuple(xy[j])], fill=rgb, width=max(int(round(8 * s)), 1))
    radius = max(8 * s, 0.5)
    for i in range(len(xy)):
        if not _missing(xy, i):
            x, y = xy[i]
            draw.ellipse((x - radius, y - radius, x + radius, y + radius), fill=(255, 255, 255))
    return np.asarray(img)


def viton_hd_representation(sample: DecodedSample, sigma: float | None = None) -> dict[str, np.ndarray]:
    """What VITON-HD's ``datasets.py`` gives its networks, plus the training targets its stages need.

    ``parse_agnostic`` (13): one-hot of the 13-grouped parse-agnostic map; ``img_agnostic`` (3) and
    ``pose_img`` (3) in [-1, 1]; ``cloth`` (3), ``cloth_mask`` (1); targets ``person`` (3), ``parse13``
    (13) and ``parse7`` (7) one-hots of the ground-truth parse, ``parse_cloth`` (1: the 7-class upper
    region), ``warped_cloth`` (3: the worn garment on white, what the GMM's warp should produce);
    ``agnostic`` (3) = ``img_agnostic`` for sample grids. ``sigma`` is accepted because the loader
    passes it to every builder; VITON-HD uses a rendered pose image, not Gaussian heatmaps.
    """
    del sigma
    xy = _openpose_xy(sample)
    parse_ag = viton_hd_parse_agnostic(sample.parse, xy)
    img_ag = to_network_rgb(viton_hd_img_agnostic(sample.person, sample.parse, xy))
    parse13 = parse_to_13(sample.parse)
    parse7 = parse13_to_7(parse13)
    upper = (parse7 == 2).astype(np.float32)[None]
    person = to_network_rgb(sample.person)
    return {
        "parse_agnostic": parse_onehot(parse_to_13(parse_ag), len(VITON_HD_13)),
        "img_agnostic": img_ag,
        "pose_img": to_network_rgb(render_pose(xy, sample.size)),
        "cloth": to_network_rgb(sample.cloth),
        "cloth_mask": (np.asarray(sample.cloth_mask) > 0).astype(np.float32)[None],
        "person": person,
        "parse13": parse_onehot(parse13, len(VITON_HD_13)),
        "parse7": parse_onehot(parse7, len(VITON_HD_7)),
        "parse_cloth": upper,
        "warped_cloth": (person * upper + (1.0 - upper)).astype(np.float32),
        "agnostic": img_ag,
    }


REPRESENTATIONS["viton_hd"] = viton_hd_representation
