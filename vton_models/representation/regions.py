"""Face and hair regions: where they are (boxes from a parse, else from the head keypoints) and
batched, differentiable crop and paste-back, so a family can refine a face at a fixed size and put
it back into the full image inside one autograd graph.

Boxes are ``(x0, y0, x1, y1)`` float32 in pixels of the image they belong to, with the
``torchvision.ops.roi_align(aligned=True)`` convention: pixel ``i`` covers ``[i, i + 1)``, so a box
around pixels 10..19 is ``(10, y0, 20, y1)``. Crops sample the box's interior at bilinear
positions; paste-back is the exact inverse mapping (``grid_sample`` of the crop at each image pixel
centre), feathered at the box border so the seam carries gradient to both sides.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from vton_models.representation.pose import POSE_NAMES

#: LIP labels of the region a face refinement works on (hair, face).
FACE_HAIR_LABELS: tuple[int, ...] = (2, 13)
HEAD_KEYPOINTS: tuple[str, ...] = ("nose", "r_eye", "l_eye", "r_ear", "l_ear")
#: Fallback when neither parse nor keypoints show a head: a box at the top centre, as fractions
#: of (W, H) for its centre and of H for its side (a standing, framed person's head).
FIXED_HEAD_BOX = (0.5, 0.12, 0.2)


def _square(cx: float, cy: float, side: float, size: tuple[int, int]) -> np.ndarray:
    """A square box of ``side`` centred on (cx, cy), shifted (not shrunk) into the image when it
    can be, clamped when it is larger than the image."""
    h, w = size
    half = side / 2.0
    x0, y0 = cx - half, cy - half
    x0 = min(max(x0, 0.0), max(w - side, 0.0))
    y0 = min(max(y0, 0.0), max(h - side, 0.0))
    return np.array([x0, y0, min(x0 + side, w), min(y0 + side, h)], np.float32)


def face_box(parse: np.ndarray, pose: np.ndarray | None = None, pose_format: str | None = None,
             labels: tuple[int, ...] = FACE_HAIR_LABELS, scale: float = 1.2) -> np.ndarray:
    """(4,) float32 square box around the ``labels`` region of ``parse`` (hair + face by default).

    Side = ``scale`` x the longer side of the region's bounding box, centred on it, kept inside the
    image. Without such pixels (an occluded or mis-parsed head), a box around the detected head
    keypoints of ``pose`` (nose, eyes, ears; side = ``scale`` x their spread, at least a fifth of
    the height); without those either, ``FIXED_HEAD_BOX``. Never empty, so a batch always crops.
    """
    h, w = parse.shape
    ys, xs = np.nonzero(np.isin(parse, labels))
    if len(xs):
        x0, x1, y0, y1 = xs.min(), xs.max() + 1, ys.min(), ys.max() + 1
        side = scale * max(x1 - x0, y1 - y0)
        return _square((x0 + x1) / 2.0, (y0 + y1) / 2.0, side, (h, w))
    if pose is not None and pose_format is not None:
        names = POSE_NAMES[pose_format]
        rows = [names.index(n) for n in HEAD_KEYPOINTS if n in names]
        head = pose[rows]
        head = head[head[:, 2] > 0, :2] + 0.5  # keypoints are pixel centres; boxes use pixel edges
        if len(head):
            spread = float(max(np.ptp(head[:, 0]), np.ptp(head[:, 1])))
            side = max(scale * 2.0 * spread, h / 5.0)
            return _square(float(head[:, 0].mean()), float(head[:, 1].mean()), side, (h, w))
    cx, cy, side = FIXED_HEAD_BOX
    return _square(cx * w, cy * h, side * h, (h, w))


def face_boxes(region: Tensor, fallback: Tensor, scale: float = 1.2) -> Tensor:
    """(B, 4) boxes as ``face_box`` draws them, batched in torch, from a (B, H, W) region mask (e.g.
    a predicted parse's hair + face): square, ``scale`` x the region's longer side, centred on it,
    shifted into the image; ``fallback`` (B, 4) where the region is empty. For a stage that must
    find the head in an image it generated (the target's parse is not known at inference)."""
    b, h, w = region.shape
    present = region.flatten(1).any(1)
    rows, cols = region.any(2), region.any(1)  # (B, H), (B, W)
    y0 = rows.float().argmax(1).float()
    y1 = h - rows.flip(1).float().argmax(1).float()
    x0 = cols.float().argmax(1).float()
    x1 = w - cols.flip(1).float().argmax(1).float()
    side = scale * torch.maximum(x1 - x0, y1 - y0)
    bx0 = torch.minimum(((x0 + x1) / 2 - side / 2).clamp_min(0.0), (w - side).clamp_min(0.0))
    by0 = torch.minimum(((y0 + y1) / 2 - side / 2).clamp_min(0.0), (h - side).clamp_min(0.0))
    boxes = torch.stack([bx0, by0, (bx0 + side).clamp_max(float(w)), (by0 + side).clamp_max(float(h))], 1)
    return torch.where(present[:, None], boxes, fallback.to(boxes.dtype))


def crop_boxes(images: Tensor, boxes: Tensor, size: tuple[int, int] = (64, 64)) -> Tensor:
    """(B, C, *size): each image's box resampled bilinearly at the centres of a ``size`` grid over
    it, differentiable w.r.t. the images: the sampling of torchvision's ``roi_align(aligned=True,
    sampling_ratio=1)`` as its Python kernel computes it (edge pixels repeat outside the image;
    the boxes of ``face_box`` lie inside it).

    Written with ``grid_sample`` rather than calling ``roi_align``: with a CPU-only torch
    torchvision's compiled op cannot load, and its Python fallback is ``torch.compile``d at the
    first call of every process (and again for new shapes), ~18 s each on 2 cores."""
    _check_boxes(images, boxes)
    (h, w), (height, width) = size, images.shape[-2:]
    boxes = boxes.to(images.dtype)

    def centres(lo: Tensor, hi: Tensor, n: int) -> Tensor:  # (B, n) in pixel-index coordinates
        steps = (torch.arange(n, device=images.device, dtype=images.dtype) + 0.5) / n
        return lo[:, None] + steps[None] * (hi - lo)[:, None] - 0.5

    ys, xs = centres(boxes[:, 1], boxes[:, 3], h), centres(boxes[:, 0], boxes[:, 2], w)
    gx, gy = torch.broadcast_tensors(((2 * xs + 1) / width - 1)[:, None, :], ((2 * ys + 1) / height - 1)[:, :, None])
    return F.grid_sample(images, torch.stack([gx, gy], -1), mode="bilinear", padding_mode="border",
                         align_corners=False)


def box_mask(boxes: Tensor, size: tuple[int, int], feather: float = 0.0) -> Tensor:
    """(B, 1, H, W) in [0, 1]: 1 inside each box, ramping to 0 over ``feather`` pixels at its edge
    (inside the box, so a pasted crop never reads outside itself)."""
    h, w = size
    ys = torch.arange(h, device=boxes.device, dtype=boxes.dtype) + 0.5
    xs = torch.arange(w, device=boxes.device, dtype=boxes.dtype) + 0.5

    def ramp(coords: Tensor, lo: Tensor, hi: Tensor) -> Tensor:
        inside = torch.minimum(coords[None] - lo[:, None], hi[:, None] - coords[None])
        if feather <= 0:
            return (inside > 0).to(boxes.dtype)
        return (inside / feather).clamp(0.0, 1.0)

    mx = ramp(xs, boxes[:, 0], boxes[:, 2])
    my = ramp(ys, boxes[:, 1], boxes[:, 3])
    return (my[:, :, None] * mx[:, None, :])[:, None]


def paste_boxes(images: Tensor, crops: Tensor, boxes: Tensor, feather: float = 2.0) -> Tensor:
    """``images`` with each crop resampled back into its box and blended with a feathered mask:
    differentiable w.r.t. both the images and the crops (and inverse to ``crop_boxes`` inside the
    box up to bilinear resampling)."""
    _check_boxes(images, boxes)
    b, _, h, w = images.shape
    ys = torch.arange(h, device=images.device, dtype=images.dtype) + 0.5
    xs = torch.arange(w, device=images.device, dtype=images.dtype) + 0.5
    boxes = boxes.to(images.dtype)
    # Image pixel centre -> crop coordinate in grid_sample's align_corners=False space [-1, 1].
    gx = (xs[None] - boxes[:, 0:1]) / (boxes[:, 2:3] - boxes[:, 0:1]) * 2.0 - 1.0
    gy = (ys[None] - boxes[:, 1:2]) / (boxes[:, 3:4] - boxes[:, 1:2]) * 2.0 - 1.0
    grid = torch.stack([gx[:, None, :].expand(b, h, w), gy[:, :, None].expand(b, h, w)], dim=-1)
    resampled = F.grid_sample(crops.to(images.dtype), grid, mode="bilinear", padding_mode="border",
                              align_corners=False)
    mask = box_mask(boxes, (h, w), feather)
    return images * (1.0 - mask) + resampled * mask


def _check_boxes(images: Tensor, boxes: Tensor) -> None:
    if boxes.ndim != 2 or boxes.shape[1] != 4 or boxes.shape[0] != images.shape[0]:
        raise ValueError(f"boxes must be (B, 4) for {images.shape[0]} images, got {tuple(boxes.shape)}")
    if bool(((boxes[:, 2] <= boxes[:, 0]) | (boxes[:, 3] <= boxes[:, 1])).any()):
        raise ValueError(f"boxes must have x1 > x0 and y1 > y0, got {boxes.tolist()}")
