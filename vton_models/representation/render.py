"""Poses drawn as pictures (OpenPose-style skeletons), for families that read a rendered pose image."""

from __future__ import annotations

import numpy as np

from vton_models.representation.pose import is_missing

#: OpenPose-style limbs over the canonical 18 points and one colour per limb (red -> magenta hue wheel).
_POSE_LIMBS: tuple[tuple[int, int], ...] = (
    (1, 8), (1, 2), (1, 5), (2, 3), (3, 4), (5, 6), (6, 7), (8, 9), (9, 10), (10, 11),
    (8, 12), (12, 13), (13, 14), (1, 0), (0, 15), (15, 17), (0, 16),
)


def render_pose(xy: np.ndarray, size: tuple[int, int], reference_width: int = 768) -> np.ndarray:
    """(H, W, 3) uint8: an OpenPose-style skeleton on black (limbs as coloured lines, joints as dots).

    VITON-HD reads OpenPose's own ``*_rendered.png``; shards carry keypoints only, so we draw the
    same kind of picture. It is not pixel-identical to OpenPose's renderer (colours and line
    widths follow its BODY_25 scheme approximately); fine-tuning adapts to it, but evaluating
    imported official weights is best done on data whose pose image came from OpenPose.
    """
    import colorsys

    from PIL import Image, ImageDraw

    h, w = size
    s = w / reference_width
    img = Image.new("RGB", (w, h), (0, 0, 0))
    draw = ImageDraw.Draw(img)
    n = len(_POSE_LIMBS)
    for k, (i, j) in enumerate(_POSE_LIMBS):
        if is_missing(xy, i) or is_missing(xy, j):
            continue
        rgb = tuple(int(255 * c) for c in colorsys.hsv_to_rgb(k / n, 1.0, 1.0))
        draw.line([tuple(xy[i]), tuple(xy[j])], fill=rgb, width=max(int(round(8 * s)), 1))
    radius = max(8 * s, 0.5)
    for i in range(len(xy)):
        if not is_missing(xy, i):
            x, y = xy[i]
            draw.ellipse((x - radius, y - radius, x + radius, y + radius), fill=(255, 255, 255))
    return np.asarray(img)
