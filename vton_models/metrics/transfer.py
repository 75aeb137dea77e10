"""Garment transfer score: did the try-on put the *new* garment on, or re-render the old one?

A sanity metric for synthetic data, not a paper metric (docs/evaluation.md). L1, SSIM and FID can
all improve while a model ignores the garment it is given (seed 000's paper input carries none), so
unpaired evaluation also asks, per person dressed in another sample's garment: inside the person's
garment region (from their own parse, the region the try-on repaints), is the generated image's
mean colour closer to the new garment's mean colour than to the person's original garment's?
The score is the fraction of judged samples where it is. A pair whose two garments have nearly the
same mean colour (closer than ``MIN_COLOUR_GAP``) says nothing either way and is not judged; nor is
a person without a garment region or a garment without mask pixels. On real photographs the
region's mean is dominated by shading and the score means little; on the synthetic set, where
garments are flat colours and patterns, a model that transfers scores near 1 and one that
re-renders the worn garment near 0.
"""

from __future__ import annotations

from typing import Any

import torch

from vton_models.metrics.checks import check_images
from vton_models.representation.parse import GARMENT_LABELS

#: Euclidean distance between the two garments' mean RGB (in [0, 1]) below which a pair is not judged.
MIN_COLOUR_GAP = 0.1


def _masked_mean(images: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, 3) mean colour over ``mask`` (B, 1, H, W) and the (B,) pixel counts."""
    count = mask.sum(dim=(1, 2, 3))
    total = (images * mask).sum(dim=(2, 3))
    return total / count.clamp(min=1).unsqueeze(1), count


class TransferScore:
    """Streaming counts (``update`` per batch, ``merge`` across workers, ``compute`` at the end)."""

    def __init__(self) -> None:
        self.transferred = 0
        self.judged = 0
        self.unjudged = 0

    @torch.no_grad()
    def update(self, fake: torch.Tensor, original: torch.Tensor, parse: torch.Tensor, cloth: torch.Tensor,
               cloth_mask: torch.Tensor) -> None:
        """``fake``, ``original`` (the person in their own garment) and ``cloth`` (the new garment)
        are (B, 3, H, W) in [0, 1]; ``parse`` (B, H, W) the person's LIP labels; ``cloth_mask``
        (B, 1, H, W) the new garment's pixels."""
        for name, images in (("fake", fake), ("original", original), ("cloth", cloth)):
            check_images(images, name)
        region = torch.zeros_like(parse, dtype=torch.bool)
        for label in GARMENT_LABELS:
            region |= parse == label
        region = region.unsqueeze(1).to(fake.dtype)
        fake_mean, region_pixels = _masked_mean(fake, region)
        original_mean, _ = _masked_mean(original, region)
        new_mean, cloth_pixels = _masked_mean(cloth, (cloth_mask > 0.5).to(cloth.dtype))
        judged = (region_pixels > 0) & (cloth_pixels > 0) & ((new_mean - original_mean).norm(dim=1) >= MIN_COLOUR_GAP)
        closer = (fake_mean - new_mean).norm(dim=1) < (fake_mean - original_mean).norm(dim=1)
        self.transferred += int((closer & judged).sum())
        self.judged += int(judged.sum())
        self.unjudged += int((~judged).sum())

    def state(self) -> list[int]:
        return [self.transferred, self.judged, self.unjudged]

    def merge(self, state: list[int]) -> None:
        self.transferred += state[0]
        self.judged += state[1]
        self.unjudged += state[2]

    def compute(self) -> dict[str, Any]:
        """``transfer_score`` (None when nothing could be judged) and the judged / unjudged counts."""
        return {"transfer_score": self.transferred / self.judged if self.judged else None,
                "transfer_judged": float(self.judged), "transfer_unjudged": float(self.unjudged)}
