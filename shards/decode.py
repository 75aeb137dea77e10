"""Shard sample bytes -> ``DecodedSample`` arrays, with the checks that make a sample *bad*.

Shared by the stream (loader workers) and ``verify_shards`` so that "verify passed" means "the
stream will accept every sample". Decoding is by content, not by member extension: VITON-HD's
``cloth-mask`` files are JPEGs stored under ``cloth_mask.png`` (bytes are copied unchanged), and
OpenCV sniffs the format from the bytes.

Why PIL for some parse maps: VITON-HD's parse maps are *palette* PNGs whose pixel values are the
LIP labels. ``cv2.imdecode`` expands a palette to its RGB colours (even with IMREAD_UNCHANGED), which
destroys the labels, so palette PNGs (IHDR colour type 3) are read with PIL (indices kept); every
other label map goes through OpenCV.

What ``meta.json`` says is applied here, so every family sees one convention: keypoints in pixels
of the image (DressCode's are in a 384x512 frame), parse maps in LIP labels (DressCode's ATR maps
are mapped), a cloth mask even where the dataset ships none (MPV, DressCode: the garment photos are
on white, and the public loaders threshold it the same way).
"""

from __future__ import annotations

import io
import json
from typing import Mapping, Sequence

import cv2
import numpy as np
from PIL import Image

from shards.sample import REQUIRED_MEMBERS, TARGET_MEMBERS
from vton_models.representation.parse import NUM_ATR_LABELS, NUM_LIP_LABELS, atr_to_lip
from vton_models.representation.pose import POSE_FORMATS, keypoints_from_dresscode, keypoints_from_openpose
from vton_models.representation.sample import DecodedSample, PersonView

#: Members the decoder reads (meta.json is parsed too).
DECODED_MEMBERS: tuple[str, ...] = ("person.jpg", "cloth.jpg", "cloth_mask.png", "parse.png", "pose.json",
                                    "pose_img.png", *TARGET_MEMBERS)
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
#: A garment photo's background is (near) white: what is darker in any channel is garment.
CLOTH_BACKGROUND_LEVEL = 240


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


def derive_cloth_mask(cloth: np.ndarray) -> np.ndarray:
    """(H, W) uint8 0/1 garment mask of an in-shop photo on white (datasets that ship none)."""
    return (cloth.min(axis=2) < CLOTH_BACKGROUND_LEVEL).astype(np.uint8)


def decode_cloth(members: Mapping[str, bytes], key: str) -> tuple[np.ndarray, np.ndarray]:
    """The garment photo and its mask (the dataset's, else derived from the white background)."""
    cloth = decode_rgb(members["cloth.jpg"], key, "cloth.jpg")
    if "cloth_mask.png" in members:
        return cloth, decode_mask(members["cloth_mask.png"], key, "cloth_mask.png")
    return cloth, derive_cloth_mask(cloth)


def decode_pose_image(data: bytes, key: str, size: tuple[int, int]) -> np.ndarray:
    """A dataset-rendered pose picture at the person's ``size``. Renderings are sometimes kept
    at another resolution of the same frame (a skeleton drawn at half size); those are resized
    (INTER_AREA down, linear up); a different aspect ratio means another frame and is an error."""
    img = decode_rgb(data, key, "pose_img.png")
    (h, w), (ph, pw) = size, img.shape[:2]
    if (ph, pw) == (h, w):
        return img
    if abs(ph * w - pw * h) > 0.01 * h * w:
        raise BadSampleError(key, "wrong size", f"pose_img.png is {ph}x{pw}, person.jpg is {h}x{w} "
                             "(a different aspect ratio)")
    return cv2.resize(img, (w, h), interpolation=cv2.INTER_AREA if ph * pw > h * w else cv2.INTER_LINEAR)


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


def check_labels(labels: np.ndarray, key: str, member: str = "parse.png", num: int = NUM_LIP_LABELS,
                 scheme: str = "LIP") -> None:
    top = int(labels.max(initial=0))
    if top >= num:
        bad = sorted(int(v) for v in np.unique(labels[labels >= num]))[:8]
        raise BadSampleError(key, "label out of range", f"{member} holds labels {bad}; {scheme} labels are 0..{num - 1}")


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


def decode_parse(data: bytes, key: str, member: str, scheme: str) -> np.ndarray:
    """A parse map as LIP labels; ``scheme`` "atr" (DressCode) is range-checked and mapped."""
    labels = decode_labels(data, key, member)
    if scheme == "atr":
        check_labels(labels, key, member, NUM_ATR_LABELS, "ATR")
        return atr_to_lip(labels)
    if scheme != "lip":
        raise BadSampleError(key, "bad meta", f"parse_labels {scheme!r} is not one of 'lip', 'atr'")
    check_labels(labels, key, member)
    return labels


def decode_pose(data: bytes, key: str, fmt: str | None, member: str = "pose.json",
                frame: tuple[int, int] | None = None, size: tuple[int, int] | None = None) -> tuple[np.ndarray, str]:
    """(K, 3) float32 keypoints and their format (from meta, else inferred from the length).

    OpenPose JSON (``people[0].pose_keypoints_2d``) or DressCode's (``keypoints``: COCO-18 in the
    ``frame`` (H, W) it was annotated in, scaled to ``size``)."""
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadSampleError(key, "bad pose", f"{member} is not JSON ({exc})") from None
    if isinstance(doc, dict) and "keypoints" in doc and "people" not in doc:
        try:
            return keypoints_from_dresscode(doc, tuple(frame or size), tuple(size),
                                            source=f"sample '{key}' {member}"), "coco18"
        except (ValueError, TypeError) as exc:
            raise BadSampleError(key, "bad pose", str(exc)) from None
    if fmt is None:
        people = doc.get("people") if isinstance(doc, dict) else None
        flat = (people[0].get("pose_keypoints_2d", people[0].get("pose_keypoints")) if people
                and isinstance(people[0], dict) else None)
        by_len = {3 * k: name for name, k in POSE_FORMATS.items()}
        fmt = by_len.get(len(flat), "body25") if isinstance(flat, list) else "body25"
    try:
        return keypoints_from_openpose(doc, fmt, source=f"sample '{key}' {member}"), fmt
    except (ValueError, TypeError, AttributeError) as exc:
        raise BadSampleError(key, "bad pose", str(exc)) from None


def _same_size(key: str, size: tuple[int, int], arrays: Mapping[str, np.ndarray]) -> None:
    for name, arr in arrays.items():
        if arr.shape[:2] != size:
            raise BadSampleError(key, "wrong size", f"{name} is {arr.shape[0]}x{arr.shape[1]}, "
                                 f"person.jpg is {size[0]}x{size[1]}")


def _has_target(members: Mapping[str, bytes], key: str) -> bool:
    """Whether the sample carries a second person; a partial one is a malformed sample (checked
    even when the second person is not decoded: it costs a membership test)."""
    present = [m for m in TARGET_MEMBERS if m in members]
    if present and len(present) != len(TARGET_MEMBERS):
        missing = [m for m in TARGET_MEMBERS if m not in members]
        raise BadSampleError(key, "missing modality", f"a two-person sample needs {list(TARGET_MEMBERS)}; "
                             f"{missing} absent")
    return bool(present)


def _decode_target(members: Mapping[str, bytes], key: str, meta: dict, size: tuple[int, int]) -> PersonView:
    person = decode_rgb(members["target.person.jpg"], key, "target.person.jpg")
    parse = decode_parse(members["target.parse.png"], key, "target.parse.png", meta.get("parse_labels", "lip"))
    _same_size(key, size, {"target.person.jpg": person, "target.parse.png": parse})
    pose, fmt = decode_pose(members["target.pose.json"], key, meta.get("target_pose_format", meta.get("pose_format")),
                            "target.pose.json", _frame(meta), size)
    return PersonView(person=person, parse=parse, pose=pose, pose_format=fmt)


def _frame(meta: dict) -> tuple[int, int] | None:
    frame = meta.get("keypoint_frame")
    return (int(frame[0]), int(frame[1])) if frame else None


#: Optional parts ``decode_sample`` can decode: the rendered pose, the second person.
OPTIONAL_PARTS: tuple[str, ...] = ("pose_img.png", "target")


def decode_sample(members: Mapping[str, bytes], key: str, parts: Sequence[str] = OPTIONAL_PARTS) -> DecodedSample:
    """Decode and validate one sample; ``BadSampleError`` says why it cannot be used.

    Checks: every required member present (a second person all or nothing), every image
    decodable, all modalities the same size, that size equal to ``meta.original_size`` when meta
    records one, parse labels within their scheme's range, keypoints of the expected count.
    ``parts``: which optional parts to decode (all by default, as ``verify`` does; the stream
    asks only for what its representation ``reads``); the others are left None, unchecked.
    """
    missing = [m for m in REQUIRED_MEMBERS if m not in members]
    if missing:
        raise BadSampleError(key, "missing modality", f"members {missing} absent (has {sorted(members)})")
    meta = decode_meta(members.get("meta.json"), key)
    person = decode_rgb(members["person.jpg"], key, "person.jpg")
    size = person.shape[:2]
    expected = meta.get("original_size")
    if expected is not None and tuple(expected) != size:
        raise BadSampleError(key, "wrong size", f"person.jpg is {size[0]}x{size[1]} but meta.json "
                             f"original_size says {expected[0]}x{expected[1]}")
    cloth, cloth_mask = decode_cloth(members, key)
    parse = decode_parse(members["parse.png"], key, "parse.png", meta.get("parse_labels", "lip"))
    _same_size(key, size, {"cloth.jpg": cloth, "cloth_mask.png": cloth_mask, "parse.png": parse})
    pose_img = (decode_pose_image(members["pose_img.png"], key, size)
                if "pose_img.png" in members and "pose_img.png" in parts else None)
    pose, fmt = decode_pose(members["pose.json"], key, meta.get("pose_format"), "pose.json", _frame(meta), size)
    target = _decode_target(members, key, meta, size) if _has_target(members, key) and "target" in parts else None
    return DecodedSample(person=person, cloth=cloth, cloth_mask=cloth_mask, parse=parse, pose=pose,
                         pose_format=fmt, key=key, target=target, pose_img=pose_img)
