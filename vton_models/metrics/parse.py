"""Per-image scores of a predicted parse map: what a segmentation stage or an auxiliary
segmentation head is judged by on held-out data."""

from __future__ import annotations

import torch
from torch import Tensor


def parse_scores(predicted: Tensor, labels: Tensor, num_classes: int) -> dict[str, Tensor]:
    """``pixel_accuracy`` and ``miou`` (mean IoU over the classes present in either map), one value
    per image, from (B, H, W) label maps."""
    classes = torch.arange(num_classes, device=labels.device).view(1, num_classes, 1, 1)
    pred_1h, true_1h = predicted.unsqueeze(1) == classes, labels.unsqueeze(1) == classes
    inter = (pred_1h & true_1h).flatten(2).sum(2).float()
    union = (pred_1h | true_1h).flatten(2).sum(2).float()
    present = union > 0
    miou = (inter / union.clamp_min(1)).where(present, torch.zeros_like(inter)).sum(1) / present.sum(1).clamp_min(1)
    return {"pixel_accuracy": (predicted == labels).float().flatten(1).mean(1), "miou": miou}
