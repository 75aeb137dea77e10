"""ALIAS normalisation (VITON-HD, Choi et al. CVPR'21) and its residual block.

ALIASNorm is SPADE with two changes that VITON-HD needs for misaligned garments:

* the parameter-free step can be ``MaskNorm``: activations inside and outside the *misalignment
  mask* (where the warped cloth does not cover the predicted cloth region) are standardised
  separately, so the statistics of the region the generator must invent do not leak into the
  aligned part;
* noise is injected before normalising: one spatial Gaussian map per sample, scaled per channel
  by ``noise_scale`` (which starts at 0, so a fresh network is deterministic and the scale is
  learned). The official code draws it as (B, W, H, 1) and transposes; we draw the same shape, so
  imported weights with non-zero scales see the noise they were trained with, and the same seed
  gives the same noise as the official generator.

Module and parameter names follow the official ``networks.py`` (``noise_scale``, ``conv_shared.0``,
``conv_gamma``, ``conv_beta``, ``conv_0/1/s``, ``norm_0/1/s``) so official checkpoints load with
an identity key mapping.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import spectral_norm as legacy_spectral_norm

Tensor = torch.Tensor

PARAM_FREE_NORMS = ("instance", "batch", "mask")


class MaskNorm(nn.Module):
    """Instance norm computed separately over ``mask`` and ``1 - mask`` (VITON-HD Eq. 3)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.norm = nn.InstanceNorm2d(channels, affine=False)

    def _normalize_region(self, region: Tensor, mask: Tensor) -> Tensor:
        # Fill the outside with the region's mean, so the instance norm's mean is the region's and the
        # outside standardises to 0; then rescale the variance from "over all pixels" to "over the region".
        h, w = region.shape[2:]
        count = mask.sum((2, 3), keepdim=True)
        count = torch.where(count == 0, torch.ones_like(count), count)
        mean = region.sum((2, 3), keepdim=True) / count
        return self.norm(region + (1 - mask) * mean) * torch.sqrt(count / (h * w))

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        mask = mask.detach()
        return self._normalize_region(x * mask, mask) + self._normalize_region(x * (1 - mask), 1 - mask)


class ALIASNorm(nn.Module):
    """Parameter-free norm of ``x + noise``, then ``* (1 + gamma(seg)) + beta(seg)``."""

    def __init__(self, param_free_norm: str, channels: int, label_channels: int, hidden: int = 128) -> None:
        super().__init__()
        if param_free_norm not in PARAM_FREE_NORMS:
            raise ValueError(f"ALIASNorm: param_free_norm {param_free_norm!r} is not one of {list(PARAM_FREE_NORMS)}")
        self.kind = param_free_norm
        self.noise_scale = nn.Parameter(torch.zeros(channels))
        if param_free_norm == "mask":
            self.param_free_norm: nn.Module = MaskNorm(channels)
        elif param_free_norm == "batch":
            self.param_free_norm = nn.BatchNorm2d(channels, affine=False)
        else:
            self.param_free_norm = nn.InstanceNorm2d(channels, affine=False)
        self.conv_shared = nn.Sequential(nn.Conv2d(label_channels, hidden, 3, padding=1), nn.ReLU())
        self.conv_gamma = nn.Conv2d(hidden, channels, 3, padding=1)
        self.conv_beta = nn.Conv2d(hidden, channels, 3, padding=1)

    def forward(self, x: Tensor, seg: Tensor, misalign_mask: Tensor | None = None) -> Tensor:
        b, _, h, w = x.shape
        spatial = torch.randn(b, w, h, 1, device=x.device, dtype=self.noise_scale.dtype)  # one map per sample
        noise = (spatial * self.noise_scale).transpose(1, 3)  # (B, C, H, W), scaled per channel
        if self.kind == "mask":
            if misalign_mask is None:
                raise ValueError("ALIASNorm(mask): a misalignment mask is required")
            normalized = self.param_free_norm(x + noise, misalign_mask)
        else:
            normalized = self.param_free_norm(x + noise)
        actv = self.conv_shared(seg)
        return normalized * (1 + self.conv_gamma(actv)) + self.conv_beta(actv)


class ALIASResBlock(nn.Module):
    """SPADE residual block with ALIASNorm; spectral norm on its convolutions (official ``norm_G``).

    With ``use_mask_norm`` the norms are MaskNorm and see ``seg`` with the misalignment mask as an
    extra channel (``label_channels + 1``); the shortcut conv has no bias, as in the official block.
    Spectral norm uses ``torch.nn.utils.spectral_norm`` (``weight_orig/_u/_v``) rather than the
    parametrization API because those are the official checkpoint's key names.
    """

    def __init__(self, in_channels: int, out_channels: int, label_channels: int, use_mask_norm: bool = True,
                 spectral: bool = True, param_free_norm: str = "instance", hidden: int = 128) -> None:
        super().__init__()
        self.learned_shortcut = in_channels != out_channels
        middle = min(in_channels, out_channels)
        sn = legacy_spectral_norm if spectral else (lambda m: m)
        self.conv_0 = sn(nn.Conv2d(in_channels, middle, 3, padding=1))
        self.conv_1 = sn(nn.Conv2d(middle, out_channels, 3, padding=1))
        if self.learned_shortcut:
            self.conv_s = sn(nn.Conv2d(in_channels, out_channels, 1, bias=False))
        norm = "mask" if use_mask_norm else param_free_norm
        labels = label_channels + 1 if use_mask_norm else label_channels
        self.use_mask_norm = use_mask_norm
        self.norm_0 = ALIASNorm(norm, in_channels, labels, hidden)
        self.norm_1 = ALIASNorm(norm, middle, labels, hidden)
        if self.learned_shortcut:
            self.norm_s = ALIASNorm(norm, in_channels, labels, hidden)
        self.relu = nn.LeakyReLU(0.2)

    def forward(self, x: Tensor, seg: Tensor, misalign_mask: Tensor | None = None) -> Tensor:
        seg = F.interpolate(seg, size=x.shape[2:], mode="nearest")
        if misalign_mask is not None:
            misalign_mask = F.interpolate(misalign_mask, size=x.shape[2:], mode="nearest")
        shortcut = self.conv_s(self.norm_s(x, seg, misalign_mask)) if self.learned_shortcut else x
        dx = self.conv_0(self.relu(self.norm_0(x, seg, misalign_mask)))
        dx = self.conv_1(self.relu(self.norm_1(dx, seg, misalign_mask)))
        return shortcut + dx
