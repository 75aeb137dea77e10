"""Evaluation metrics under one pinned protocol (docs/evaluation.md).

Paired (per image, RGB in [0, 1]): SSIM, MS-SSIM, PSNR, L1, LPIPS, mask-SSIM. Distribution:
FID, KID, IS, mask-IS from pytorch-fid's InceptionV3. ``MetricSuite`` accumulates all of them
in fixed memory across batches and ranks. The networks load lazily (``metrics.networks``), so
importing this package stays cheap for the training loop's in-loop validation.
"""

from vton_models.metrics.checks import MetricInputError, check_images, check_mask, check_pair
from vton_models.metrics.distribution import (FeatureReservoir, FeatureStats, InceptionScoreStats, frechet_distance,
                                              kernel_inception_distance)
from vton_models.metrics.masked import apply_mask, foreground_mask
from vton_models.metrics.paired import (l1_per_image, ms_ssim_per_image, ms_ssim_scales, psnr_per_image,
                                        ssim_per_image, to_unit_range)
from vton_models.metrics.suite import PAIRED, MetricSuite, SuiteOptions, quantize

__all__ = [
    "PAIRED", "FeatureReservoir", "FeatureStats", "InceptionScoreStats", "MetricInputError", "MetricSuite",
    "SuiteOptions", "apply_mask", "check_images", "check_mask", "check_pair", "foreground_mask", "frechet_distance",
    "kernel_inception_distance", "l1_per_image", "ms_ssim_per_image", "ms_ssim_scales", "psnr_per_image",
    "quantize", "ssim_per_image", "to_unit_range",
]
