"""``viton_hd.tryon``: VITON-HD's three stages chained on the *new* garment, as the official ``test.py``.

The stages train teacher-forced (the GMM warps to the ground-truth garment region, ALIAS is
conditioned on the ground-truth parse); a try-on has no ground truth, so here each stage reads what
the one before it predicted for the garment being put on:

1. **Segmentation** (``test.py`` Part 1): SegGenerator on (cloth mask, masked cloth, parse-agnostic,
   pose image, noise) at its working size; its scores upsampled bilinearly to the image size,
   Gaussian-blurred (official: 15x15, sigma 3, zero padding, at 768 px width), argmax to 13 labels,
   grouped to ALIAS's 7.
2. **Warping** (Part 2): the GMM warps the new garment and its mask to the *predicted* garment region.
3. **Synthesis** (Part 3): the misalignment mask (predicted region the warped mask does not cover),
   then ALIAS on (agnostic, pose, warped cloth) with the predicted parse.

The blur is given in pixels at 768 px width, like every VITON-HD radius here, and scaled by
``width / 768`` (identical at the official 1024x768; at 64x48 it is nearly none instead of covering
the image). The chain trains nothing: its networks are copies of three registered stages, whose
versions its config names (``model.seg`` / ``gmm`` / ``alias``) and whose options it was built with
(``model.stage_options``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from vton_models.families.viton_hd.inputs import VITON_HD_7, VITON_HD_13, VITON_HD_REFERENCE_WIDTH
from vton_models.families.viton_hd.recipes import (
    VitonHDAliasRecipe,
    VitonHDGMMRecipe,
    VitonHDSegRecipe,
    _VitonHDRecipe,
    alias_inputs,
)
from vton_models.recipe import NetworkSpec, Phase, RecipeContext

Tensor = torch.Tensor

#: The chained stages, in order, with the recipe each registered stage must have been trained by.
STAGES: dict[str, type[_VitonHDRecipe]] = {"seg": VitonHDSegRecipe, "gmm": VitonHDGMMRecipe, "alias": VitonHDAliasRecipe}
#: test.py's Gaussian blur of the upsampled segmentation scores, at 768 px width.
BLUR_KERNEL, BLUR_SIGMA = 15, 3.0


def gaussian_kernel(size: int, sigma: float) -> Tensor:
    """(size, size) normalised Gaussian, the outer product of two 1-D ones (torchgeometry's)."""
    x = torch.arange(size, dtype=torch.float64) - size // 2
    g = torch.exp(-(x ** 2) / (2.0 * sigma ** 2))
    g = g / g.sum()
    return (g[:, None] * g[None, :]).to(torch.float32)


def gaussian_blur(x: Tensor, size: int, sigma: float) -> Tensor:
    """Depthwise blur with zero padding (``tgm.image.GaussianBlur``, what ``test.py`` uses)."""
    if size <= 1 or sigma <= 0:
        return x
    kernel = gaussian_kernel(size, sigma).to(x.device, x.dtype).expand(x.shape[1], 1, size, size)
    return F.conv2d(x, kernel, padding=size // 2, groups=x.shape[1])


def blur_at(width: int) -> tuple[int, float]:
    """(kernel size, sigma) of the official blur scaled to an image ``width`` px wide."""
    scale = width / VITON_HD_REFERENCE_WIDTH
    return 2 * max(int(round((BLUR_KERNEL // 2) * scale)), 0) + 1, BLUR_SIGMA * scale


def _grouping(groups: tuple[tuple[str, tuple[int, ...]], ...], n_in: int) -> Tensor:
    """(n_out, n_in) 0/1 matrix: output channel j sums the input labels of group j."""
    m = torch.zeros(len(groups), n_in)
    for j, (_, labels) in enumerate(groups):
        m[j, list(labels)] = 1.0
    return m


_GROUP_13_TO_7 = _grouping(VITON_HD_7, len(VITON_HD_13))


@dataclass
class ChainSteps:
    """Every intermediate of one pass, for sample sheets and tests."""

    seg_scores: Tensor  # (B, 13, h, w) SegGenerator's sigmoid scores at its working size
    blurred: Tensor  # (B, 13, H, W) upsampled and blurred
    labels13: Tensor  # (B, H, W) argmax
    parse7: Tensor  # (B, 7, H, W) one-hot, ALIAS's groups
    warped: Tensor  # (B, 3, H, W) the new garment warped to the predicted region
    warped_mask: Tensor  # (B, 1, H, W)
    misalign: Tensor  # (B, 1, H, W)
    output: Tensor  # (B, 3, H, W) the try-on in [-1, 1]


class VitonHDTryOnRecipe(_VitonHDRecipe):
    name: ClassVar[str] = "viton_hd.tryon"
    inference_only: ClassVar[bool] = True
    networks: ClassVar[tuple[NetworkSpec, ...]] = tuple(NetworkSpec(stage, "generator") for stage in STAGES)
    phases: ClassVar[tuple[Phase, ...]] = ()
    chains: ClassVar[dict[str, str]] = {stage: cls.name for stage, cls in STAGES.items()}
    default_loss_weights: ClassVar[dict[str, float]] = {}
    default_model_options: ClassVar[dict[str, Any]] = {
        # The registered stage each network was copied from (models:/NAME/VERSION); provenance.
        "seg": None, "gmm": None, "alias": None,
        # Each stage's model options as it was trained (stage -> options); {} = the stage defaults.
        "stage_options": {},
    }

    def __init__(self, context: RecipeContext) -> None:
        super().__init__(context)
        options = self.model_options["stage_options"] or {}
        unknown = sorted(set(options) - set(STAGES))
        if unknown:
            raise ValueError(f"model.stage_options: unknown stage(s) {unknown}; the chain has {list(STAGES)}")
        self.stages: dict[str, _VitonHDRecipe] = {
            stage: cls(RecipeContext(image_size=context.image_size, model=dict(options.get(stage) or {})))
            for stage, cls in STAGES.items()
        }

    def build_networks(self) -> dict[str, nn.Module]:
        return {stage: recipe.build_networks()["G"] for stage, recipe in self.stages.items()}

    def inputs(self, batch: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """The batch fields plus the segmentation input (its noise drawn here, as ``test.py`` does)."""
        return self.stages["seg"].inputs(batch)

    def run(self, nets: Mapping[str, nn.Module], x: Mapping[str, Tensor]) -> ChainSteps:
        """One pass of the chain, every step kept (``generate`` returns the last)."""
        gmm = self.stages["gmm"]
        size = tuple(x["person"].shape[2:])
        scores = nets["seg"](x["seg_input"])
        up = F.interpolate(scores, size=size, mode="bilinear", align_corners=False)
        blurred = gaussian_blur(up, *blur_at(size[1]))
        labels13 = blurred.argmax(1)
        onehot13 = F.one_hot(labels13, len(VITON_HD_13)).permute(0, 3, 1, 2).to(up.dtype)
        parse7 = torch.einsum("kc,bchw->bkhw", _GROUP_13_TO_7.to(up.device, up.dtype), onehot13)
        _, warped, warped_mask = gmm.warp(nets["gmm"], {**x, **gmm.gmm_inputs(x, parse7[:, 2:3])})
        alias = alias_inputs(x, parse7, warped, warped_mask)
        output = nets["alias"](alias["alias_x"], alias["seg"], alias["seg_div"], alias["misalign"])
        return ChainSteps(scores, blurred, labels13, parse7, warped, warped_mask, alias["misalign"], output)

    def generate(self, nets: Mapping[str, nn.Module], inputs: Mapping[str, Tensor]) -> Tensor:
        return self.run(nets, inputs).output

    def sample_panels(self, inputs: Mapping[str, Tensor], generated: Tensor) -> dict[str, Tensor]:
        return {"agnostic": inputs["img_agnostic"], "cloth": inputs["cloth"], "generated": generated,
                "ground truth": inputs["person"]}
