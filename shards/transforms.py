"""Augmentation in the loader workers: resize, optional geometry, paper 000's photometric jitter.

Order and why:

1. **Resize** to the configured ``(H, W)``: person/cloth with INTER_AREA when shrinking (no
   aliasing) and INTER_LINEAR when enlarging; parse and cloth mask with INTER_NEAREST (labels must
   stay labels); keypoints scaled with the same pixel-centre convention as ``cv2.resize``
   (``x' = (x + 0.5) * W'/W - 0.5``). Done first so every later step runs at training size.
2. **Horizontal flip** (optional, ``hflip_p``): the whole pair is mirrored — person, parse, pose
   *and* cloth + cloth mask — so the garment on the person still matches the in-shop garment.
   LIP's left/right labels are swapped (14<->15 arms, 16<->17 legs, 18<->19 shoes) and so are the
   left/right keypoints of the pose format; otherwise "left arm" would be drawn on the right.
3. **Affine** (optional, ``affine_p``: small scale / translation / rotation) through
   albumentations, applied with *one* set of parameters to person (linear), parse (nearest) and the
   keypoints; the in-shop cloth is not moved. Borders replicate (image and labels alike, so they
   stay consistent). Keypoints that leave the frame become "not detected" (0, 0, 0), the OpenPose
   convention, and undetected ones stay undetected.
4. **Photometric** (paper 000): ColorJitter(0.2, 0.2, 0.2, 0.1) with p=0.5, then GaussianBlur
   (kernel 3-7) or MedianBlur (5) with p=0.3, on RGB images only. Person and cloth get the *same*
   parameters (albumentations ``additional_targets``): the task is "put this garment on this
   person", and independent hue shifts would make the target garment's colour disagree with the
   cloth image the network is shown.

Two-person samples (multi-pose triplets): the target person is resized and flipped with the
source (one flip decision: left and right must mean the same for both persons and the garment),
gets the same photometric parameters (one garment, one lighting), and its own affine draw (each
person's geometry stays aligned with its own parse and pose; the two poses differ anyway).
``swap_p`` exchanges the two persons (source becomes target and back) before anything else, so a
triplet trains both directions and each keeps its own ground truth. A
rendered pose image (``pose_img``) follows the source person's resize and affine; a flip drops it
(mirroring a rendered skeleton would paint the left limbs in the right limbs' colours), and the
builders draw the pose from the flipped keypoints instead.

Determinism: ``Augmenter(sample, seed)`` depends only on the sample and ``seed``; every random
choice (flip coin, albumentations' internal generators) is re-seeded from it per call.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import albumentations as A
import cv2
import numpy as np

from vton_models.representation.parse import NUM_LIP_LABELS
from vton_models.representation.sample import DecodedSample, PersonView

#: LIP label pairs that swap under a horizontal flip (left/right arm, leg, shoe).
LIP_FLIP_PAIRS: tuple[tuple[int, int], ...] = ((14, 15), (16, 17), (18, 19))
#: Left/right keypoint pairs per pose format.
POSE_FLIP_PAIRS: dict[str, tuple[tuple[int, int], ...]] = {
    # BODY_25: shoulders, elbows, wrists, hips, knees, ankles, eyes, ears, big toes, small toes, heels
    "body25": ((2, 5), (3, 6), (4, 7), (9, 12), (10, 13), (11, 14), (15, 16), (17, 18),
               (19, 22), (20, 23), (21, 24)),
    # COCO-18: shoulders, elbows, wrists, hips, knees, ankles, eyes, ears
    "coco18": ((2, 5), (3, 6), (4, 7), (8, 11), (9, 12), (10, 13), (14, 15), (16, 17)),
}


def _permutation(n: int, pairs: Sequence[tuple[int, int]]) -> np.ndarray:
    perm = np.arange(n)
    for a, b in pairs:
        perm[a], perm[b] = b, a
    return perm


_LIP_FLIP_LUT = _permutation(256, LIP_FLIP_PAIRS).astype(np.uint8)
_POSE_FLIP = {fmt: _permutation(max(max(p) for p in pairs) + 1, pairs) for fmt, pairs in POSE_FLIP_PAIRS.items()}


@dataclass(frozen=True)
class AugmentConfig:
    """Augmentation knobs; the defaults are paper 000's (photometric only, no geometry)."""

    color_jitter_p: float = 0.5
    brightness: float = 0.2
    contrast: float = 0.2
    saturation: float = 0.2
    hue: float = 0.1
    blur_p: float = 0.3
    gaussian_blur: tuple[int, int] = (3, 7)
    median_blur: int = 5
    hflip_p: float = 0.0
    affine_p: float = 0.0
    scale: tuple[float, float] = (0.95, 1.05)
    translate: float = 0.03  # fraction of the image size, each direction
    rotate: float = 3.0  # degrees, each direction
    swap_p: float = 0.0  # two-person samples: exchange source and target (multi-pose training uses 0.5)

    @classmethod
    def from_options(cls, options: "AugmentConfig | Mapping[str, Any] | None") -> "AugmentConfig":
        if options is None:
            return cls()
        if isinstance(options, cls):
            return options
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(options) - known)
        if unknown:
            raise ValueError(f"unknown augmentation option(s) {unknown}; known: {sorted(known)}")
        values = {k: tuple(v) if isinstance(v, list) else v for k, v in options.items()}
        return cls(**values)

    def __post_init__(self) -> None:
        for name in ("color_jitter_p", "blur_p", "hflip_p", "affine_p", "swap_p"):
            p = getattr(self, name)
            if not 0.0 <= p <= 1.0:
                raise ValueError(f"augmentation option {name}={p}: a probability is in [0, 1]")
        lo, hi = self.gaussian_blur
        if lo < 3 or hi < lo or lo % 2 == 0 or hi % 2 == 0:
            raise ValueError(f"augmentation option gaussian_blur={self.gaussian_blur}: odd kernel sizes >= 3")
        if self.median_blur < 3 or self.median_blur % 2 == 0:
            raise ValueError(f"augmentation option median_blur={self.median_blur}: odd kernel size >= 3")


def _replace(sample: DecodedSample, **arrays: Any) -> DecodedSample:
    return dataclasses.replace(sample, **arrays)


def _scale_pose(pose: np.ndarray, src: tuple[int, int], dst: tuple[int, int]) -> np.ndarray:
    (h, w), (th, tw) = src, dst
    pose = pose.copy()
    seen = pose[:, 2] > 0
    pose[seen, 0] = (pose[seen, 0] + 0.5) * (tw / w) - 0.5
    pose[seen, 1] = (pose[seen, 1] + 0.5) * (th / h) - 0.5
    return pose


def resize_sample(sample: DecodedSample, size: tuple[int, int]) -> DecodedSample:
    """All modalities to ``size`` (H, W); see the module docstring for interpolation choices."""
    h, w = sample.size
    th, tw = size
    if (h, w) == (th, tw):
        return sample
    shrink = th * tw < h * w
    interp = cv2.INTER_AREA if shrink else cv2.INTER_LINEAR

    def image(a: np.ndarray) -> np.ndarray:
        return cv2.resize(a, (tw, th), interpolation=interp)

    def labels(a: np.ndarray) -> np.ndarray:
        return cv2.resize(a, (tw, th), interpolation=cv2.INTER_NEAREST)

    target = None if sample.target is None else PersonView(
        person=image(sample.target.person), parse=labels(sample.target.parse),
        pose=_scale_pose(sample.target.pose, (h, w), size), pose_format=sample.target.pose_format)
    return _replace(
        sample,
        person=image(sample.person),
        cloth=image(sample.cloth),
        cloth_mask=labels(sample.cloth_mask),
        parse=labels(sample.parse),
        pose=_scale_pose(sample.pose, (h, w), size),
        target=target,
        pose_img=None if sample.pose_img is None else image(sample.pose_img),
    )


def _flip_pose(pose: np.ndarray, fmt: str, width: int) -> np.ndarray:
    pose = pose[_POSE_FLIP[fmt]].copy()
    seen = pose[:, 2] > 0
    pose[seen, 0] = (width - 1) - pose[seen, 0]
    return pose


def hflip_sample(sample: DecodedSample) -> DecodedSample:
    """Mirror the whole pair (and the target person), swapping LIP left/right labels and left/right
    keypoints; a rendered pose image is dropped (see the module docstring)."""
    _h, w = sample.size
    target = None if sample.target is None else PersonView(
        person=np.ascontiguousarray(sample.target.person[:, ::-1]), parse=_LIP_FLIP_LUT[sample.target.parse[:, ::-1]],
        pose=_flip_pose(sample.target.pose, sample.target.pose_format, w), pose_format=sample.target.pose_format)
    return _replace(
        sample,
        person=np.ascontiguousarray(sample.person[:, ::-1]),
        cloth=np.ascontiguousarray(sample.cloth[:, ::-1]),
        cloth_mask=np.ascontiguousarray(sample.cloth_mask[:, ::-1]),
        parse=_LIP_FLIP_LUT[sample.parse[:, ::-1]],
        pose=_flip_pose(sample.pose, sample.pose_format, w),
        target=target,
        pose_img=None,
    )


def swap_persons(sample: DecodedSample) -> DecodedSample:
    """Source and target person exchanged (same garment, so the cloth stays); the source's rendered
    pose image does not describe the new source and is dropped. One-person samples are returned as
    they are."""
    t = sample.target
    if t is None:
        return sample
    source = PersonView(person=sample.person, parse=sample.parse, pose=sample.pose, pose_format=sample.pose_format)
    return _replace(sample, person=t.person, parse=t.parse, pose=t.pose, pose_format=t.pose_format,
                    target=source, pose_img=None)


def _seed_int(seed: int | Sequence[int]) -> int:
    entropy = [int(seed)] if isinstance(seed, (int, np.integer)) else [int(s) for s in seed]
    return int(np.random.SeedSequence(entropy).generate_state(1, np.uint32)[0])


class Augmenter:
    """``augmenter(sample, seed) -> sample`` at ``image_size``; ``augment=False`` only resizes."""

    def __init__(self, image_size: tuple[int, int], augment: bool = True,
                 options: AugmentConfig | Mapping[str, Any] | None = None) -> None:
        self.image_size = (int(image_size[0]), int(image_size[1]))
        self.augment = augment
        self.config = AugmentConfig.from_options(options)
        c = self.config
        self._photometric = A.Compose(
            [
                A.ColorJitter(brightness=c.brightness, contrast=c.contrast, saturation=c.saturation,
                              hue=c.hue, p=c.color_jitter_p),
                A.OneOf([A.GaussianBlur(blur_limit=c.gaussian_blur, p=1.0),
                         A.MedianBlur(blur_limit=(c.median_blur, c.median_blur), p=1.0)], p=c.blur_p),
            ],
            additional_targets={"cloth": "image", "target": "image"},
            seed=0,
        )
        self._affine = A.Compose(
            [A.Affine(scale=c.scale, translate_percent=(-c.translate, c.translate), rotate=(-c.rotate, c.rotate),
                      interpolation=cv2.INTER_LINEAR, mask_interpolation=cv2.INTER_NEAREST,
                      border_mode=cv2.BORDER_REPLICATE, p=1.0)],
            keypoint_params=A.KeypointParams(format="xy", remove_invisible=False),
            additional_targets={"pose_img": "image"},
            seed=0,
        )

    def __call__(self, sample: DecodedSample, seed: int | Sequence[int]) -> DecodedSample:
        sample = resize_sample(sample, self.image_size)
        if not self.augment:
            return sample
        c = self.config
        rng = np.random.default_rng(_seed_int(seed))
        flip, do_affine, photo_seed, affine_seed = (rng.random() < c.hflip_p, rng.random() < c.affine_p,
                                                    int(rng.integers(2**31)), int(rng.integers(2**31)))
        # Drawn last, so a one-person sample's draws are what they always were.
        target_affine_seed = int(rng.integers(2**31))
        if sample.target is not None and rng.random() < c.swap_p:
            sample = swap_persons(sample)
        if flip:
            sample = hflip_sample(sample)
        if do_affine:
            person, parse, pose, pose_img = self._apply_affine(sample.person, sample.parse, sample.pose,
                                                               affine_seed, sample.pose_img)
            sample = _replace(sample, person=person, parse=parse, pose=pose, pose_img=pose_img)
            if sample.target is not None:
                t = sample.target
                person, parse, pose, _ = self._apply_affine(t.person, t.parse, t.pose, target_affine_seed)
                sample = _replace(sample, target=PersonView(person, parse, pose, t.pose_format))
        if c.color_jitter_p > 0 or c.blur_p > 0:
            self._photometric.set_random_seed(photo_seed)
            images = {"image": sample.person, "cloth": sample.cloth}
            if sample.target is not None:
                images["target"] = sample.target.person
            out = self._photometric(**images)
            target = None if sample.target is None else dataclasses.replace(sample.target, person=out["target"])
            sample = _replace(sample, person=out["image"], cloth=out["cloth"], target=target)
        return sample

    def _apply_affine(self, person: np.ndarray, parse: np.ndarray, pose: np.ndarray, seed: int,
                      pose_img: np.ndarray | None = None) -> tuple:
        """One affine draw for one person: image, labels, keypoints (and its rendered pose image)."""
        h, w = parse.shape
        self._affine.set_random_seed(seed)
        extra = {} if pose_img is None else {"pose_img": pose_img}
        out = self._affine(image=person, mask=parse, keypoints=pose[:, :2].astype(np.float32), **extra)
        pose = pose.copy()
        moved = np.asarray(out["keypoints"], np.float32)[:, :2]
        inside = (moved[:, 0] >= 0) & (moved[:, 0] <= w - 1) & (moved[:, 1] >= 0) & (moved[:, 1] <= h - 1)
        keep = (pose[:, 2] > 0) & inside
        pose[:, :2] = np.where(keep[:, None], moved, 0.0)
        pose[:, 2] = np.where(keep, pose[:, 2], 0.0)
        labels = np.asarray(out["mask"], np.uint8)
        assert labels.max(initial=0) < NUM_LIP_LABELS, "nearest-neighbour affine created a label"
        moved_img = None if pose_img is None else np.ascontiguousarray(out["pose_img"])
        return np.ascontiguousarray(out["image"]), labels, pose, moved_img
