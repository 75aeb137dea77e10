"""CP-VTON's person representation (seed 003, and the GMM input of seed 002), as its public
``cp_dataset.py`` computes it.

``agnostic`` (22 channels) = [body shape (1), head RGB (3), 18 pose squares (3-21)]:

- shape: the foreground (``parse > 0``) as a 0/255 image, shrunk with PIL's BILINEAR to 1/16 of the
  size (12x16 at 256x192) and enlarged back with BILINEAR, so only a blurred silhouette is left;
- head: the person where the parse says hat, hair, sunglasses or face (1, 2, 4, 13), -1 elsewhere;
- pose: one channel per keypoint in COCO-18 order, a filled square of half-side ``r`` at +1 on -1,
  drawn only where ``x > 1 and y > 1`` (the detector's confidence is ignored, as in CP-VTON).

Images are normalised as torchvision's ``ToTensor`` + ``Normalize(0.5, 0.5)`` do,
``(x / 255 - 0.5) / 0.5`` in float32, so the values equal the original loader's bit for bit.
CP-VTON's radius (5, its ``train.py`` default) is in pixels at 192 px width; we scale it by
``width / 192`` (identical at the official 256x192, and a proportionate square at test sizes).
"""

from __future__ import annotations

import numpy as np

from vton_models.representation.base import Representation
from vton_models.representation.parse import NUM_LIP_LABELS, check_labels
from vton_models.representation.pose import pose_coco18
from vton_models.representation.sample import DecodedSample

CPVTON_REFERENCE_WIDTH = 192
CPVTON_RADIUS = 5
#: hat, hair, sunglasses, face: what CP-VTON keeps of the person's head.
HEAD_LABELS: tuple[int, ...] = (1, 2, 4, 13)
#: upper clothes, dress, coat: the worn garment CP-VTON's GMM learns to warp onto.
UPPER_GARMENT_LABELS: tuple[int, ...] = (5, 6, 7)
SHAPE_FACTOR = 16


def torchvision_normalize(u8: np.ndarray) -> np.ndarray:
    """uint8 (H, W) or (H, W, C) -> float32 (C, H, W) in [-1, 1], as ``ToTensor`` + ``Normalize(0.5, 0.5)``."""
    x = np.asarray(u8)
    chw = x[None] if x.ndim == 2 else x.transpose(2, 0, 1)
    out = chw.astype(np.float32) / np.float32(255)
    return (out - np.float32(0.5)) / np.float32(0.5)


def cpvton_shape(parse: np.ndarray, factor: int = SHAPE_FACTOR) -> np.ndarray:
    """(H, W) float32 in [-1, 1]: the blurred silhouette (``parse > 0`` down to 1/``factor`` and back up)."""
    from PIL import Image

    labels = check_labels(parse, NUM_LIP_LABELS, "cpvton_shape")
    h, w = labels.shape
    if w // factor < 1 or h // factor < 1:
        raise ValueError(f"cpvton_shape: image {h}x{w} is smaller than the {factor}x shrink factor")
    silhouette = Image.fromarray(((labels > 0) * 255).astype(np.uint8))
    small = silhouette.resize((w // factor, h // factor), Image.BILINEAR)
    return torchvision_normalize(np.asarray(small.resize((w, h), Image.BILINEAR)))[0]


def pose_squares(pose: np.ndarray, size: tuple[int, int], radius: float = CPVTON_RADIUS) -> np.ndarray:
    """(K, H, W) float32: a filled square of half-side ``radius`` at +1 on -1 per keypoint with
    ``x > 1 and y > 1`` (CP-VTON's test for a detected point), drawn by PIL as the original does."""
    from PIL import Image, ImageDraw

    h, w = size
    out = np.empty((len(pose), h, w), np.float32)
    for i, (x, y) in enumerate(np.asarray(pose, np.float64)[:, :2]):
        canvas = Image.new("L", (w, h))
        if x > 1 and y > 1:
            ImageDraw.Draw(canvas).rectangle((x - radius, y - radius, x + radius, y + radius), "white", "white")
        out[i] = torchvision_normalize(np.asarray(canvas))[0]
    return out


def region(parse: np.ndarray, labels: tuple[int, ...]) -> np.ndarray:
    """(1, H, W) float32 0/1 of the pixels whose label is one of ``labels``."""
    return np.isin(parse, labels).astype(np.float32)[None]


def cpvton_representation(sample: DecodedSample, sigma: float | None = None) -> dict[str, np.ndarray]:
    """CP-VTON's inputs and targets: ``agnostic`` (22), ``cloth`` (3), ``cloth_mask`` (1, the
    decoder's ``>= 128``, as CP-VTON thresholds its JPEG masks); targets ``person`` (3),
    ``parse_cloth_rgb`` (3: the worn upper garment on white), ``pcm`` (1: its region), ``parse``
    (H, W) LIP labels (auxiliary segmentation target and masked metrics). ``sigma`` is accepted
    because the loader passes it to every builder; CP-VTON draws squares, not Gaussians."""
    del sigma
    h, w = sample.size
    labels = check_labels(sample.parse, NUM_LIP_LABELS, f"sample '{sample.key}' parse")
    person = torchvision_normalize(sample.person)
    phead = region(labels, HEAD_LABELS)
    pcm = region(labels, UPPER_GARMENT_LABELS)
    radius = CPVTON_RADIUS * w / CPVTON_REFERENCE_WIDTH
    agnostic = np.concatenate([cpvton_shape(labels)[None], person * phead - (1 - phead),
                               pose_squares(pose_coco18(sample.pose, sample.pose_format), (h, w), radius)])
    return {
        "agnostic": agnostic,
        "cloth": torchvision_normalize(sample.cloth),
        "cloth_mask": (np.asarray(sample.cloth_mask) > 0).astype(np.float32)[None],
        "person": person,
        "parse_cloth_rgb": person * pcm + (1 - pcm),
        "pcm": pcm,
        "parse": np.asarray(labels).astype(np.int64),
    }


#: Built whole in the loader (PIL resizing and drawing have no device form).
CPVTON = Representation("cpvton", build=cpvton_representation, reads=("cloth_mask.png",))
