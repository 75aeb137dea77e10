"""Shard sample bytes -> ``DecodedSample`` arrays, with the checks that make a sample *bad*.

Shared by the stream (loader workers) and ``verify_shards`` so that "verify passed" means "the
stream will accept every sample". Decoding is by content, not by member extension: VITON-HD's
``cloth-mask`` files are JPEGs stored under ``cloth_mask.png`` (bytes are copied unchanged), and
OpenCV sniffs the format from the bytes.

Why PIL for some parse maps: VITON-HD's parse maps are *palette* PNGs whose pixel values are the
LIP labels. ``cv2.imdecode`` expands a palette to its RGB colours (even with IMREAD_UNCHANGED), which
destroys the labels, so palette PNGs (IHDR colour type 3) are read with PIL (indices kept); every
other label map goes through OpenCV.
"""

from __future__ import annotations

import io
import json
from typing import Mapping

import cv2
import numpy as np
from PIL import Image

from shards.sample import REQUIRED_MEMBERS
from vton_models.representation.parse import NUM_LIP_LABELS
from vton_models.representation.pose import POSE_FORMATS, keypoints_from_openpose
from vton_models.representation.sample import DecodedSample

#: Members the decoder reads (meta.json is parsed too).
DECODED_MEMBERS: tuple[str, ...] = ("person.jpg", "cloth.jpg", "cloth_mask.png", "parse.png", "pose.json")
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


class BadSampleError(ValueError):
    """A sample that cannot be used for training; ``reason`` is a short category for counters."""

    def __init__(self, key: str, reason: str, detail: str) -> None:
        super().__init__(f"sample '{key}': {reason}: {detail}")
        self.key, self.reason, self.detail = key, reason, detail


def _image(data: bytes, key: str, member: str, flags: int) -> np.ndarray:
    img = cv2.imdecode(np.frombuffer(data, np.uint8), flags) if data else None
    if img is None:
        raise BadSampleError(key, "bad image", f"{member} ({len(data)} bytes) is not a decodable image")
    return img


#: OpenCV >= 4.10 decodes straight to RGB (saves a full-image colour conversion per image).
_IMREAD_RGB = getattr(cv2, "IMREAD_COLOR_RGB", None)


def decode_rgb(data: bytes, key: str, member: str) -> np.ndarray:
    """(H, W, 3) uint8 RGB."""
    if _IMREAD_RGB is not None:
        return _image(data, key, member, _IMREAD_RGB)
    return cv2.cvtColor(_image(data, key, member, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def decode_mask(data: bytes, key: str, member: str) -> np.ndarray:
    """(H, W) uint8 0/1; JPEG masks are thresholded at 128 (as VITON-HD's loaders do)."""
    gray = _image(data, key, member, cv2.IMREAD_GRAYSCALE)
    return (gray >= 128).astype(np.uint8)


def _is_palette_png(data: bytes) -> bool:
    # IHDR is the first chunk: 8-byte signature, 4-byte length, "IHDR", width, height, depth, colour type.
    return data[:8] == _PNG_SIGNATURE and len(data) > 25 and data[12:16] == b"IHDR" and data[25] == 3


def decode_labels(data: bytes, key: str, member: str = "parse.png") -> np.ndarray:
    """(H, W) uint8 label values from a palette or single-channel label PNG."""
    if _is_palette_png(data):
        try:
            with Image.open(io.BytesIO(data)) as im:
                labels = np.asarray(im)
        except Exception as exc:  # noqa: BLE001 - PIL raises many types for broken files
            raise BadSampleError(key, "bad image", f"{member} is not a decodable PNG ({exc})") from None
    else:
        labels = _image(data, key, member, cv2.IMREAD_UNCHANGED)
    if labels.ndim != 2:
        raise BadSampleError(key, "bad label map", f"{member} has shape {labels.shape}; a label map "
                             "is single-channel or palette")
    if labels.dtype != np.uint8:
        if labels.max(initial=0) > 255:
            raise BadSampleError(key, "label out of range", f"{member} holds values up to {int(labels.max())}")
        labels = labels.astype(np.uint8)
    return labels


def check_labels(labels: np.ndarray, key: str, member: str = "parse.png", num: int = NUM_LIP_LABELS) -> None:
    top = int(labels.max(initial=0))
    if top >= num:
        bad = sorted(int(v) for v in np.unique(labels[labels >= num]))[:8]
        raise BadSampleError(key, "label out of range", f"{member} holds labels {bad}; LIP labels are 0..{num - 1}")


def decode_meta(data: bytes | None, key: str) -> dict:
    if data is None:
        return {}
    try:
        meta = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadSampleError(key, "bad meta", f"meta.json is not JSON ({exc})") from None
    if not isinstance(meta, dict):
        raise BadSampleError(key, "bad meta", "meta.json is not a JSON object")
    return meta


def decode_pose(data: bytes, key: str, fmt: str | None) -> tuple[np.ndarray, str]:
    """(K, 3) float32 keypoints and their format (from meta, else inferred from the length)."""
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadSampleError(key, "bad pose", f"pose.json is not JSON ({exc})") from None
    if fmt is None:
        people = doc.get("people") if isinstance(doc, dict) else None
        flat = (people[0].get("pose_keypoints_2d", people[0].get("pose_keypoints")) if people
                and isinstance(people[0], dict) else None)
        by_len = {3 * k: name for name, k in POSE_FORMATS.items()}
        fmt = by_len.get(len(flat), "body25") if isinstance(flat, list) else "body25"
    try:
        return keypoints_from_openpose(doc, fmt, source=f"sample '{key}' pose.json"), fmt
    except (ValueError, TypeError, AttributeError) as exc:
        raise BadSampleError(key, "bad pose", str(exc)) from None


def decode_sample(members: Mapping[str, bytes], key: str) -> DecodedSample:
    """Decode and validate one sample; ``BadSampleError`` says why it cannot be used.

    Checks: every required member present, every image decodable, all modalities the same size,
    that size equal to ``meta.original_size`` when meta records one, parse labels within LIP's 0-19.
    """
    missing = [m for m in REQUIRED_MEMBERS if m not in members]
    if missing:
        raise BadSampleError(key, "missing modality", f"members {missing} absent (has {sorted(members)})")
    meta = decode_meta(members.get("meta.json"), key)
    person = decode_rgb(members["person.jpg"], key, "person.jpg")
    cloth = decode_rgb(members["cloth.jpg"], key, "cloth.jpg")
    cloth_mask = decode_mask(members["cloth_mask.png"], key, "cloth_mask.png")
    parse = decode_labels(members["parse.png"], key, "parse.png")
    size = person.shape[:2]
    expected = meta.get("original_size")
    if expected is not None and tuple(expected) != size:
        raise BadSampleError(key, "wrong size", f"person.jpg is {size[0]}x{size[1]} but meta.json "
                             f"original_size says {expected[0]}x{expected[1]}")
    for name, arr in (("cloth.jpg", cloth), ("cloth_mask.png", cloth_mask), ("parse.png", parse)):
        if arr.shape[:2] != size:
            raise BadSampleError(key, "wrong size", f"{name} is {arr.shape[0]}x{arr.shape[1]}, "
                                 f"person.jpg is {size[0]}x{size[1]}")
    check_labels(parse, key)
    pose, fmt = decode_pose(members["pose.json"], key, meta.get("pose_format"))
    return DecodedSample(person=person, cloth=cloth, cloth_mask=cloth_mask, parse=parse, pose=pose,
                         pose_format=fmt, key=key)
