"""Random erasing (Zhong et al., AAAI 2020) of a generated image inside a network's forward pass.

Seed 004 erases part of G2's coarse person before G3 reads it, so G3 learns to repair what G2 got
wrong instead of copying it (SPG-VTON Sec. III-D). The paper gives no parameters; ours are
torchvision's ``RandomErasing`` defaults: one rectangle per image, area a uniform fraction of
``area``, aspect ratio log-uniform in ``aspect``, up to ten draws until it fits, filled with
``value``. Unlike torchvision, it draws from an explicit generator (the recipe's per-micro-batch
``training_generator``), so a resumed run erases exactly the rectangles the uninterrupted one did.
"""

from __future__ import annotations

import math

import torch

Tensor = torch.Tensor

ATTEMPTS = 10


def erasing_boxes(batch: int, size: tuple[int, int], generator: torch.Generator,
                  area: tuple[float, float] = (0.02, 0.33), aspect: tuple[float, float] = (0.3, 3.3)) -> list[tuple[int, int, int, int] | None]:
    """Per image, ``(top, left, height, width)`` of the rectangle to erase, or None when ten draws
    found none that fits (as torchvision, the image is then left whole)."""
    h, w = size
    log_aspect = (math.log(aspect[0]), math.log(aspect[1]))
    boxes: list[tuple[int, int, int, int] | None] = []
    for _ in range(batch):
        box = None
        for _ in range(ATTEMPTS):
            u = torch.rand(4, generator=generator, dtype=torch.float64).tolist()
            target = h * w * (area[0] + (area[1] - area[0]) * u[0])
            ratio = math.exp(log_aspect[0] + (log_aspect[1] - log_aspect[0]) * u[1])
            eh, ew = round(math.sqrt(target * ratio)), round(math.sqrt(target / ratio))
            if 0 < eh < h and 0 < ew < w:
                box = (int(u[2] * (h - eh + 1)), int(u[3] * (w - ew + 1)), eh, ew)
                break
        boxes.append(box)
    return boxes


def random_erase(images: Tensor, generator: torch.Generator, value: float = 0.0,
                 area: tuple[float, float] = (0.02, 0.33), aspect: tuple[float, float] = (0.3, 3.3)) -> Tensor:
    """``images`` (B, C, H, W) with one rectangle per image set to ``value``; differentiable w.r.t.
    the pixels kept (a multiplication by a 0/1 mask, not an in-place write)."""
    b, _, h, w = images.shape
    keep = torch.ones(b, 1, h, w, dtype=images.dtype, device=images.device)
    for i, box in enumerate(erasing_boxes(b, (h, w), generator, area, aspect)):
        if box is not None:
            top, left, eh, ew = box
            keep[i, :, top:top + eh, left:left + ew] = 0
    return images * keep + value * (1 - keep)
