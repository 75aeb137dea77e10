"""Unpaired try-on of a test split in one process: the garment transfer score and a try-on sheet.

What the demo shows after training (and a test checks): every person of the split dressed in another
sample's garment (``meta.unpaired_cloth_key``), scored by ``TransferScore`` and laid out as rows of
person | new garment | result. It needs no pretrained network, unlike ``vton eval``'s suite (which
reports the same score beside FID/KID when run with ``--pairs unpaired``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import numpy as np
import torch
from torch import nn

from orchestrator.config import Config
from vton_models.recipe import Recipe


@dataclass
class UnpairedTryOn:
    score: dict  # TransferScore.compute()
    sheet: np.ndarray  # (H, W, 3) uint8 RGB: person | new garment | result, one row per person


def unpaired_tryon(recipe: Recipe, networks: Mapping[str, nn.Module], cfg: Config, manifest_url: str,
                   sheet_rows: int = 8) -> UnpairedTryOn:
    """Score every sample of ``manifest_url`` and draw the first ``sheet_rows`` of them."""
    from orchestrator.evaluation.evaluate import eval_batches
    from orchestrator.registry.tracking import image_grid
    from vton_models.metrics import to_unit_range
    from vton_models.metrics.transfer import TransferScore

    representation = cfg.data.representation or recipe.representation.name
    scorer, rows, drawn = TransferScore(), [], 0
    for net in networks.values():
        net.eval()
    with torch.no_grad():
        for batch in eval_batches(manifest_url, 0, 1, "unpaired", tuple(cfg.data.image_size), representation,
                                  {"sigma": cfg.data.pose_sigma}):
            inputs = recipe.inputs(batch)
            fake = recipe.generate(networks, inputs).clamp(-1, 1)
            scorer.update(to_unit_range(fake), to_unit_range(batch["person"]), batch["parse"],
                          to_unit_range(batch["cloth"]), batch["cloth_mask"])
            if drawn < sheet_rows:
                take = min(sheet_rows - drawn, fake.shape[0])
                rows.append(image_grid([batch["person"][:take], batch["cloth"][:take], fake[:take]], max_rows=take))
                drawn += take
    return UnpairedTryOn(scorer.compute(), np.concatenate(rows, axis=0))


def describe_score(score: dict) -> str:
    """``0.93 (56 of 60 people; 4 pairs not judged)`` for printing."""
    if score["transfer_score"] is None:
        return f"not judged (no pair of distinct garments among {int(score['transfer_unjudged'])} samples)"
    judged = int(score["transfer_judged"])
    text = f"{score['transfer_score']:.2f} ({round(score['transfer_score'] * judged)} of {judged} people"
    unjudged = int(score["transfer_unjudged"])
    return text + (f"; {unjudged} pairs not judged)" if unjudged else ")")
