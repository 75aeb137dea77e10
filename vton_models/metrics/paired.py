"""Paired image metrics, one value per image, on RGB in [0, 1].

The protocol is fixed so numbers are comparable across runs and repos: images are mapped from the
models' [-1, 1] to [0, 1] (``data_range`` 1), SSIM uses an 11x11 Gaussian window with sigma 1.5,
K1 = 0.01, K2 = 0.03, population covariance, computed per RGB channel over the *valid* region
(no padding) and averaged — the same as scikit-image's
``structural_similarity(gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=1,
channel_axis=-1)``. Per-image values let callers sum them across batches and ranks.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

_WINDOW = 11
_SIGMA = 1.5
_K1, _K2 = 0.01, 0.03


def to_unit_range(images: torch.Tensor) -> torch.Tensor:
    """[-1, 1] model outputs -> [0, 1], clamped (a generator may overshoot slightly)."""
    return ((images.float() + 1.0) / 2.0).clamp(0.0, 1.0)


def _check_pair(a: torch.Tensor, b: torch.Tensor) -> None:
    if a.shape != b.shape:
        raise ValueError(f"paired metrics need images of the same shape, got {tuple(a.shape)} and {tuple(b.shape)}")
    if a.dim() != 4:
        raise ValueError(f"expected (B, C, H, W) images, got shape {tuple(a.shape)}")


def _gaussian_1d(device: torch.device) -> torch.Tensor:
    coords = torch.arange(_WINDOW, dtype=torch.float64, device=device) - (_WINDOW - 1) / 2
    g = torch.exp(-(coords**2) / (2 * _SIGMA**2))
    return g / g.sum()


def _blur_valid(x: torch.Tensor) -> torch.Tensor:
    """The 11x11 Gaussian window over the valid region, as two 1-D passes (it is separable).

    Same sums as the 2-D window up to float64 rounding, at 22 instead of 121 multiply-adds per
    pixel: float64 convolutions have no fast CPU kernel, and SSIM was most of `vton eval`'s time.
    """
    channels = x.shape[1]
    g = _gaussian_1d(x.device)
    x = F.conv2d(x, g.view(1, 1, _WINDOW, 1).expand(channels, 1, _WINDOW, 1), groups=channels)
    return F.conv2d(x, g.view(1, 1, 1, _WINDOW).expand(channels, 1, 1, _WINDOW), groups=channels)


def _ssim_cs_maps(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(SSIM map, contrast-structure map) over the valid region, float64, per channel."""
    if min(a.shape[-2:]) < _WINDOW:
        raise ValueError(f"SSIM needs images of at least {_WINDOW}x{_WINDOW}, got {tuple(a.shape[-2:])}")
    a, b = a.double(), b.double()
    # One convolution for the five blurred fields (a, b, a^2, b^2, ab) instead of five.
    mu_a, mu_b, aa, bb, ab = _blur_valid(torch.cat([a, b, a * a, b * b, a * b], dim=1)).chunk(5, dim=1)
    var_a = aa - mu_a**2
    var_b = bb - mu_b**2
    cov = ab - mu_a * mu_b
    c1, c2 = _K1**2, _K2**2
    cs_map = (2 * cov + c2) / (var_a + var_b + c2)
    return ((2 * mu_a * mu_b + c1) / (mu_a**2 + mu_b**2 + c1)) * cs_map, cs_map


def ssim_per_image(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """SSIM of each image pair (inputs in [0, 1]), shape (B,)."""
    _check_pair(a, b)
    ssim_map, _ = _ssim_cs_maps(a, b)
    return ssim_map.mean(dim=(1, 2, 3)).float()


#: Wang, Simoncelli & Bovik (2003) scale weights, finest first.
MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)


def ms_ssim_scales(height: int, width: int) -> int:
    """Scales that fit: the coarsest must still hold one 11x11 window.

    256x192 and larger get all 5 scales (the short side needs >= 176 px). Smaller images (the
    64x48 tests and demo) use the first ``n`` weights renormalised to sum to 1, rather than padding,
    which would invent structure; ``MetricSuite`` reports ``n`` so numbers are never mixed silently.
    """
    n, h, w = 1, height, width
    while n < len(MS_SSIM_WEIGHTS) and min(h // 2, w // 2) >= _WINDOW:
        n, h, w = n + 1, h // 2, w // 2
    return n


def ms_ssim_per_image(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Multi-scale SSIM per image pair (inputs in [0, 1]), shape (B,).

    Same window and constants as ``ssim_per_image``; 2x2 average pooling between scales (Wang et
    al.'s reference code); contrast-structure terms clamped at 0 before the fractional powers
    (negative values would give NaN; pytorch-msssim and torchmetrics do the same); computed per
    RGB channel and averaged over channels at the end.
    """
    return ssim_and_ms_ssim_per_image(a, b)[1]


def ssim_and_ms_ssim_per_image(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(SSIM, MS-SSIM) per image pair: SSIM is MS-SSIM's finest scale, computed once for both."""
    _check_pair(a, b)
    scales = ms_ssim_scales(a.shape[-2], a.shape[-1])
    weights = torch.tensor(MS_SSIM_WEIGHTS[:scales], dtype=torch.float64, device=a.device)
    weights = weights / weights.sum()
    a, b = a.double(), b.double()
    result = torch.ones(a.shape[:2], dtype=torch.float64, device=a.device)
    ssim = None
    for j in range(scales):
        ssim_map, cs_map = _ssim_cs_maps(a, b)
        if j == 0:
            ssim = ssim_map.mean(dim=(1, 2, 3)).float()
        term = (ssim_map if j == scales - 1 else cs_map).mean(dim=(2, 3)).clamp(min=0.0)
        result = result * term ** weights[j]
        if j < scales - 1:
            a, b = F.avg_pool2d(a, 2), F.avg_pool2d(b, 2)
    return ssim, result.mean(dim=1).float()


def psnr_per_image(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """PSNR in dB (inputs in [0, 1]); identical images give +inf."""
    _check_pair(a, b)
    mse = (a.double() - b.double()).pow(2).mean(dim=(1, 2, 3))
    return (10.0 * torch.log10(1.0 / mse)).float()


def l1_per_image(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Mean absolute error (inputs in [0, 1])."""
    _check_pair(a, b)
    return (a.float() - b.float()).abs().mean(dim=(1, 2, 3))
