"""Masked variants (mask-SSIM, mask-IS) as in seed paper 002, "masking out the background".

Paper 002 gives no formula; the metric comes from Ma et al. (PG2, NeurIPS'17) and its public code,
which multiplies *both* the generated and the real image by the target person's foreground mask
and then computes plain SSIM / IS on the results. We do the same: foreground = every LIP label
except 0 (background) of the *real* person's parse map; background pixels become 0 (black) in
[0, 1]. The mask comes from the ground truth, never from the generated image, so a model cannot
improve its score by changing the silhouette.

Seed 004 reports the same metrics "for the extracted regions": ``mask_region`` selects the region,
``foreground`` (seed 002's, the default), ``cloth`` (LIP upper clothes, dress, coat) or
``face_hair`` (LIP face, hair).
"""

from __future__ import annotations

import torch

from vton_models.metrics.checks import MetricInputError, check_mask

BACKGROUND_LABEL = 0
#: ``mask_region`` -> the LIP labels it keeps (None: every label but the background).
MASK_REGIONS: dict[str, tuple[int, ...] | None] = {"foreground": None, "cloth": (5, 6, 7), "face_hair": (2, 13)}


def foreground_mask(parse: torch.Tensor) -> torch.Tensor:
    """(B, H, W) LIP label map -> (B, 1, H, W) float mask, 1 on the person, 0 on background."""
    return region_mask(parse, "foreground")


def region_mask(parse: torch.Tensor, region: str) -> torch.Tensor:
    """(B, H, W) LIP label map -> (B, 1, H, W) float mask of ``region`` (a ``MASK_REGIONS`` name)."""
    if region not in MASK_REGIONS:
        raise MetricInputError(f"mask region {region!r}: allowed {list(MASK_REGIONS)}")
    if not torch.is_tensor(parse) or parse.dim() not in (3, 4):
        raise MetricInputError(f"parse: expected a (B, H, W) label map, got "
                               f"{tuple(parse.shape) if torch.is_tensor(parse) else type(parse).__name__}")
    if parse.dim() == 4:
        if parse.shape[1] != 1:
            raise MetricInputError(f"parse: expected (B, H, W) or (B, 1, H, W) labels, got {tuple(parse.shape)}")
        parse = parse[:, 0]
    labels = MASK_REGIONS[region]
    if labels is None:
        return (parse != BACKGROUND_LABEL).unsqueeze(1).float()
    return torch.isin(parse, torch.tensor(labels, device=parse.device)).unsqueeze(1).float()


def apply_mask(images: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Images with the background set to 0; ``mask`` (B, H, W) or (B, 1, H, W), 1 = keep."""
    check_mask(mask, images)
    if mask.dim() == 3:
        mask = mask.unsqueeze(1)
    return images * mask.to(images.dtype)
