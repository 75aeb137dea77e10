"""Input validation shared by every metric: fail on the caller's mistake, never average over it.

A NaN image or a mask of the wrong shape does not crash the arithmetic: it silently produces a
NaN or a broadcast number that looks plausible. These checks turn such inputs into one clear
``MetricInputError`` naming the argument and the shape or value at fault.
"""

from __future__ import annotations

import torch


class MetricInputError(ValueError):
    """Images or masks handed to a metric are unusable; the message says which and why."""


def check_images(images: torch.Tensor, name: str = "images") -> None:
    """(B, 3, H, W), finite, within [0, 1] (a small tolerance for float round-off)."""
    if not torch.is_tensor(images) or images.dim() != 4 or images.shape[1] != 3:
        shape = tuple(images.shape) if torch.is_tensor(images) else type(images).__name__
        raise MetricInputError(f"{name}: expected RGB images of shape (B, 3, H, W), got {shape}")
    if images.shape[0] == 0:
        raise MetricInputError(f"{name}: empty batch")
    if not torch.isfinite(images).all():
        bad = int((~torch.isfinite(images)).flatten(1).any(1).sum())
        raise MetricInputError(f"{name}: {bad} of {images.shape[0]} images contain NaN or Inf values")
    lo, hi = float(images.min()), float(images.max())
    if lo < -1e-4 or hi > 1 + 1e-4:
        raise MetricInputError(f"{name}: values must lie in [0, 1] (use to_unit_range on [-1, 1] "
                               f"outputs), got [{lo:.3f}, {hi:.3f}]")


def check_pair(fake: torch.Tensor, real: torch.Tensor) -> None:
    check_images(fake, "fake")
    check_images(real, "real")
    if fake.shape != real.shape:
        raise MetricInputError(f"paired metrics need fake and real of the same shape, got "
                               f"{tuple(fake.shape)} and {tuple(real.shape)}")


def check_mask(mask: torch.Tensor, images: torch.Tensor, name: str = "mask") -> None:
    """A mask is (B, H, W) or (B, 1, H, W) with the images' batch and spatial size."""
    expected = (images.shape[0], images.shape[2], images.shape[3])
    shape = tuple(mask.shape) if torch.is_tensor(mask) else None
    ok = shape is not None and (shape == expected or shape == (expected[0], 1, *expected[1:]))
    if not ok:
        raise MetricInputError(f"{name}: expected shape {expected} or {(expected[0], 1, *expected[1:])} "
                               f"to match images {tuple(images.shape)}, got {shape}")
