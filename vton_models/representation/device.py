"""Torch forms of the primitives, for representations built on the training device.

Contract: each function repeats the numpy primitive's float32 operations in the same order, so a
representation's device half (``Representation.expand``) is bit-identical to its loader builder
(the loader worker computes every transcendental; the device only multiplies, divides and scatters).
"""

from __future__ import annotations

from typing import MutableMapping

import torch
from torch import Tensor


def reusable(out: MutableMapping[str, Tensor] | None, name: str, shape: tuple[int, ...], dtype: torch.dtype,
         device: torch.device) -> Tensor:
    """``out[name]`` when it fits (reused across batches), else a new tensor stored there."""
    if out is None:
        return torch.empty(shape, dtype=dtype, device=device)
    t = out.get(name)
    if t is None or tuple(t.shape) != shape or t.dtype != dtype or t.device != device:
        t = torch.empty(shape, dtype=dtype, device=device)
        out[name] = t
    return t


def network_rgb_(images: Tensor, out: Tensor) -> Tensor:
    """(B, H, W, 3) uint8 -> ``out`` (B, 3, H, W) float32 in [-1, 1]: the same float32 operations as
    ``representation.to_network_rgb``, so the values are bit-identical."""
    torch.div(images.permute(0, 3, 1, 2), 127.5, out=out)
    return out.sub_(1.0)


def pose_heatmaps_(gy: Tensor, gx: Tensor, c: Tensor, out: Tensor) -> Tensor:
    """(B, K, H), (B, K, W) and (B, K) factors (``representation.pose_profiles``) -> ``out``
    (B, K, H, W): the numpy builder's two float32 products in its order, so bit-identical maps."""
    dev = out.device
    torch.mul(gy.to(dev, non_blocking=True)[..., :, None], gx.to(dev, non_blocking=True)[..., None, :], out=out)
    return out.mul_(c.to(dev, non_blocking=True)[..., None, None])


def parse_onehot_(labels: Tensor, out: Tensor) -> Tensor:
    """(B, H, W) integer labels -> ``out`` (B, C, H, W) one-hot (labels were range-checked by ``compact``)."""
    out.zero_()
    return out.scatter_(1, labels.unsqueeze(1), 1.0)
