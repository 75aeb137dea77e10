"""Keypoints: reading OpenPose files, the orders our families use, and pose encodings (heatmaps, disks).

Conventions
-----------
* Keypoints are ``(x, y, c)`` in pixel coordinates of the *current* image (pixel centres at
  integer coordinates, as OpenPose writes them); ``c == 0`` means "not detected" and such a
  point contributes nothing, whatever its x, y.
* The canonical 18-keypoint order (``POSE18_NAMES``) is the one seed paper 000 feeds its network:
  the *first 18* BODY_25 joints. The paper says it drops "the foot keypoints (19-24)", but the
  first 18 are indices 0-17, so ``l_ear`` (18) is dropped as well and ``mid_hip`` (8) is kept; we
  follow the tensor the paper actually builds (``P = [H_0..H_17]``). COCO-18 poses are mapped to
  the same meanings: ``mid_hip`` is the midpoint of the two hips (confidence = the lower of the two,
  0 if either is missing) and COCO's ``l_ear`` is dropped.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

POSE_FORMATS: dict[str, int] = {"body25": 25, "coco18": 18}

#: The canonical 18 keypoints (= BODY_25 indices 0-17).
POSE18_NAMES: tuple[str, ...] = (
    "nose", "neck", "r_shoulder", "r_elbow", "r_wrist", "l_shoulder", "l_elbow", "l_wrist",
    "mid_hip", "r_hip", "r_knee", "r_ankle", "l_hip", "l_knee", "l_ankle", "r_eye", "l_eye", "r_ear",
)

#: The orders keypoints come in, by name. BODY_25 is OpenPose's default model (VITON-HD); COCO-18 is
#: OpenPose's COCO model (VITON/CP-VTON, MPV, DressCode), which CP-VTON and SPG-VTON weights expect.
BODY25_NAMES: tuple[str, ...] = (
    "nose", "neck", "r_shoulder", "r_elbow", "r_wrist", "l_shoulder", "l_elbow", "l_wrist", "mid_hip",
    "r_hip", "r_knee", "r_ankle", "l_hip", "l_knee", "l_ankle", "r_eye", "l_eye", "r_ear", "l_ear",
    "l_big_toe", "l_small_toe", "l_heel", "r_big_toe", "r_small_toe", "r_heel",
)
COCO18_NAMES: tuple[str, ...] = (
    "nose", "neck", "r_shoulder", "r_elbow", "r_wrist", "l_shoulder", "l_elbow", "l_wrist",
    "r_hip", "r_knee", "r_ankle", "l_hip", "l_knee", "l_ankle", "r_eye", "l_eye", "r_ear", "l_ear",
)
POSE_NAMES: dict[str, tuple[str, ...]] = {"body25": BODY25_NAMES, "coco18": COCO18_NAMES}

#: COCO-18 index for each canonical keypoint; None = derived (mid_hip).
_COCO18_TO_POSE18: tuple[int | None, ...] = (0, 1, 2, 3, 4, 5, 6, 7, None, 8, 9, 10, 11, 12, 13, 14, 15, 16)
_COCO_R_HIP, _COCO_L_HIP = 8, 11


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


def keypoints_from_dresscode(doc: Mapping[str, Any], frame: tuple[int, int], size: tuple[int, int],
                              source: str = "pose.json") -> np.ndarray:
    """(18, 3) float32 COCO-18 keypoints from a DressCode ``keypoints/*_2.json``.

    DressCode stores ``{"keypoints": [[x, y, score, id] x 18]}`` in a 384x512 frame (``frame`` =
    (H, W)) whatever the image size, with undetected points at score 0 (or x, y = -1); the points
    are scaled to ``size`` (H, W) with the pixel-centre convention ``cv2.resize`` uses."""
    points = doc.get("keypoints") if isinstance(doc, Mapping) else None
    if not isinstance(points, list):
        raise ValueError(f"{source}: no 'keypoints' list (DressCode keypoints JSON)")
    if len(points) != 18 or any(not isinstance(p, (list, tuple)) or len(p) < 3 for p in points):
        raise ValueError(f"{source}: expected 18 keypoints of [x, y, score, id], got {len(points)}"
                         + ("" if len(points) != 18 else " with a malformed entry"))
    kp = np.asarray([[float(p[0]), float(p[1]), float(p[2])] for p in points], np.float32)
    seen = (kp[:, 2] > 0) & (kp[:, 0] >= 0) & (kp[:, 1] >= 0)
    (fh, fw), (h, w) = frame, size
    kp[:, 0] = np.where(seen, (kp[:, 0] + 0.5) * (w / fw) - 0.5, 0.0)
    kp[:, 1] = np.where(seen, (kp[:, 1] + 0.5) * (h / fh) - 0.5, 0.0)
    kp[:, 2] = np.where(seen, kp[:, 2], 0.0)
    return kp


def convert_pose(keypoints: np.ndarray, src: str, dst: str) -> np.ndarray:
    """Keypoints from order ``src`` to order ``dst``, by joint name (``POSE_NAMES``).

    A joint ``dst`` has and ``src`` lacks is undetected (0, 0, 0), except BODY_25's ``mid_hip``,
    which is the midpoint of the two hips when both are detected (confidence: the lower one), as
    OpenPose's BODY_25 defines it. COCO-18 -> BODY_25 -> COCO-18 is the identity."""
    if src not in POSE_NAMES or dst not in POSE_NAMES:
        raise ValueError(f"convert_pose: formats must be in {sorted(POSE_NAMES)}, got {src!r} -> {dst!r}")
    kp = np.asarray(keypoints, np.float32)
    if kp.shape != (len(POSE_NAMES[src]), 3):
        raise ValueError(f"convert_pose: {src} keypoints must have shape ({len(POSE_NAMES[src])}, 3), got {kp.shape}")
    if src == dst:
        return kp.copy()
    index = {name: i for i, name in enumerate(POSE_NAMES[src])}
    out = np.zeros((len(POSE_NAMES[dst]), 3), np.float32)
    for j, name in enumerate(POSE_NAMES[dst]):
        if name in index:
            out[j] = kp[index[name]]
    if dst == "body25" and "mid_hip" not in index:
        r, l = kp[index["r_hip"]], kp[index["l_hip"]]
        if r[2] > 0 and l[2] > 0:
            out[BODY25_NAMES.index("mid_hip")] = ((r[0] + l[0]) / 2, (r[1] + l[1]) / 2, min(r[2], l[2]))
    return out


def pose_coco18(keypoints: np.ndarray, fmt: str) -> np.ndarray:
    """(18, 3) in COCO-18 order, what CP-VTON, MG-VTON and SPG-VTON networks were trained on (their
    pose channels follow it; ``pose18`` is a different order, seed 000's)."""
    return convert_pose(keypoints, fmt, "coco18")


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


def openpose_xy(pose: np.ndarray, fmt: str) -> np.ndarray:
    """(18, 2) float64 pixel positions in the canonical order with undetected points at (0, 0),
    OpenPose's own convention, which the official VITON-HD code tests for (``x == 0 and y == 0``)."""
    kp = pose18(pose, fmt).astype(np.float64)
    xy = kp[:, :2].copy()
    xy[kp[:, 2] <= 0] = 0.0
    return xy


def is_missing(xy: np.ndarray, i: int) -> bool:
    """Whether point ``i`` of an ``openpose_xy`` array is OpenPose's "not detected" (0, 0)."""
    return bool(xy[i, 0] == 0.0 and xy[i, 1] == 0.0)
