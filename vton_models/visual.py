"""How a recipe shows what is not an RGB image (parse maps, pose channels) in a sample grid or as
the "image" a parse stage is evaluated by: palette colours in [-1, 1], like every other panel."""

from __future__ import annotations

import torch
import torch.nn.functional as F

Tensor = torch.Tensor

#: The LIP dataset's own colours for its 20 labels (background black, hair red, upper clothes
#: orange, face blue, ...), so a parse looks as it does in the papers' figures.
LIP_PALETTE = (
    (0, 0, 0), (128, 0, 0), (255, 0, 0), (0, 85, 0), (170, 0, 51), (255, 85, 0), (0, 0, 85), (0, 119, 221),
    (85, 85, 0), (0, 85, 85), (85, 51, 0), (52, 86, 128), (0, 128, 0), (0, 0, 255), (51, 170, 221),
    (0, 255, 255), (85, 255, 170), (170, 255, 85), (255, 255, 0), (255, 170, 0),
)


def palette_image(scores: Tensor, palette: Tensor | tuple[tuple[int, int, int], ...] = LIP_PALETTE) -> Tensor:
    """(B, K, H, W) one-hot, probabilities or logits -> (B, 3, H, W) in [-1, 1]: each pixel's argmax
    label in its palette colour (0..255 RGB per label)."""
    colours = torch.as_tensor(palette, dtype=torch.float32, device=scores.device) / 127.5 - 1.0
    if colours.shape != (scores.shape[1], 3):
        raise ValueError(f"palette_image: {scores.shape[1]} labels but a palette of {tuple(colours.shape)}")
    onehot = F.one_hot(scores.argmax(1), scores.shape[1]).permute(0, 3, 1, 2).to(torch.float32)
    return torch.einsum("bkhw,kc->bchw", onehot, colours)


def pose_image(channels: Tensor) -> Tensor:
    """(B, K, H, W) pose maps in [0, 1] -> (B, 3, H, W): all keypoints white on black."""
    return (channels.amax(1, keepdim=True).clamp(0, 1) * 2 - 1).expand(-1, 3, -1, -1)


def multipose_panels(inputs: dict, generated: Tensor, target: Tensor) -> dict[str, Tensor]:
    """A multi-pose stage's sample-grid columns (seeds 002 and 004): source | cloth | target pose |
    (the predicted target parse, where the stage reads one) | generated | ground truth."""
    panels = {"source": inputs["src_person"], "cloth": inputs["cloth"], "target pose": pose_image(inputs["tgt_pose"])}
    if "soft_parse" in inputs:
        panels["predicted parse"] = palette_image(inputs["soft_parse"])
    return {**panels, "generated": generated, "ground truth": target}
