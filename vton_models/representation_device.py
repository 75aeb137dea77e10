"""Representations split in two: a compact part built in loader workers, the rest on the device.

Why: at 512x384 paper 000's float32 inputs are ~40 MB a sample (41 + 3 + 3 + 1 channels, plus
an int64 parse map), while everything they are computed from — two uint8 RGB images, a uint8
mask, a uint8 label map and 18 keypoints — is 1.6 MB. Building the float tensors in the loader
workers makes every batch cross the process boundary 25x larger than it needs to and spends
worker CPU on memory traffic (bench/p1_stream.py measured collation alone at ~48 ms a sample).
Shipping the compact arrays and expanding them with batched torch ops in the training process
(on its device: a GPU does it in well under a millisecond) removes both costs.

Contract: ``expand(collated compact batch)`` equals the stacked output of the loader-side numpy
builder of the same name (``vton_models.representation``) — same keys, shapes, dtypes and
bit-identical values (the worker computes every transcendental; the device only does the same
single-rounding float32 operations the numpy builder does).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping, MutableMapping

import numpy as np
import torch
from torch import Tensor

from vton_models.representation import (
    AGNOSTIC_GRAY,
    GARMENT_LABELS,
    NUM_LIP_LABELS,
    DecodedSample,
    _check_labels,
    pose18,
    pose_profiles,
)


@dataclass(frozen=True)
class SplitRepresentation:
    """A representation built in two halves: ``compact`` per sample (numpy, loader workers) and
    ``expand`` per collated batch (torch, any device)."""

    compact: Callable[..., dict[str, np.ndarray]]
    expand: Callable[..., dict[str, Tensor]]


def _out(out: MutableMapping[str, Tensor] | None, name: str, shape: tuple[int, ...], dtype: torch.dtype,
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


# ------------------------------------------------------------------------------- unet_sa (000)


def unet_sa_compact(sample: DecodedSample, sigma: float = 3.0) -> dict[str, np.ndarray]:
    """What a loader worker ships for ``unet_sa``: uint8 images, mask and labels, and the 1-D
    factors of the 18 pose heatmaps (``pose_gy`` (18, H), ``pose_gx`` (18, W), ``pose_c`` (18,)).

    Labels are range-checked here, in the worker, so a bad sample is still skipped and counted
    by the stream instead of failing in the training process.
    """
    _check_labels(sample.parse, NUM_LIP_LABELS, f"sample '{sample.key}' parse")
    gy, gx, c = pose_profiles(pose18(sample.pose, sample.pose_format), sample.size, sigma)

    def owned(a: np.ndarray) -> np.ndarray:  # C-contiguous and writable (torch.from_numpy wants that)
        return np.require(a, np.uint8, ["C_CONTIGUOUS", "WRITEABLE"])

    return {
        "person_u8": owned(sample.person),
        "cloth_u8": owned(sample.cloth),
        "cloth_mask_u8": owned(sample.cloth_mask),
        "parse_u8": owned(sample.parse),
        "pose_gy": gy,
        "pose_gx": gx,
        "pose_c": c,
    }


def unet_sa_expand(batch: Mapping[str, Any], device: torch.device | str = "cpu",
                   out: MutableMapping[str, Tensor] | None = None) -> dict[str, Tensor]:
    """A collated ``unet_sa_compact`` batch -> ``representation.unet_sa_representation``'s fields
    with a batch dimension, on ``device`` (written into ``out``'s tensors when given)."""
    device = torch.device(device)
    person = batch["person_u8"].to(device, non_blocking=True)
    b, h, w, _ = person.shape
    parse_u8 = batch["parse_u8"].to(device, non_blocking=True)
    parse = _out(out, "parse", (b, h, w), torch.int64, device).copy_(parse_u8)
    inputs = _out(out, "inputs", (b, 3 + 18 + NUM_LIP_LABELS, h, w), torch.float32, device)
    person_net = network_rgb_(person, _out(out, "person", (b, 3, h, w), torch.float32, device))
    garment = torch.zeros_like(parse, dtype=torch.bool)
    for label in GARMENT_LABELS:
        garment |= parse_u8 == label
    # The gray in network units, computed in float32 exactly as the numpy builder does.
    gray = torch.tensor(AGNOSTIC_GRAY, dtype=torch.float32, device=device) / 127.5 - 1.0
    torch.where(garment.unsqueeze(1), gray, person_net, out=inputs[:, 0:3])
    pose_heatmaps_(batch["pose_gy"], batch["pose_gx"], batch["pose_c"], inputs[:, 3:21])
    parse_onehot_(parse, inputs[:, 21:])
    cloth_mask = _out(out, "cloth_mask", (b, 1, h, w), torch.float32, device)
    cloth_mask.copy_(batch["cloth_mask_u8"].to(device, non_blocking=True).unsqueeze(1) > 0)
    return {
        "inputs": inputs,
        "person": person_net,
        "cloth": network_rgb_(batch["cloth_u8"].to(device, non_blocking=True),
                              _out(out, "cloth", (b, 3, h, w), torch.float32, device)),
        "cloth_mask": cloth_mask,
        "agnostic": inputs[:, 0:3],
        "parse": parse,
    }


#: Representation name -> its split form; a representation not listed here is built whole in
#: the loader workers.
SPLIT_REPRESENTATIONS: dict[str, SplitRepresentation] = {
    "unet_sa": SplitRepresentation(compact=unet_sa_compact, expand=unet_sa_expand),
}


def split_representation(name: str) -> SplitRepresentation:
    """The split form of ``name``; the error lists the representations that have one."""
    try:
        return SPLIT_REPRESENTATIONS[name]
    except KeyError:
        raise ValueError(f"representation {name!r} has no device-side form (representation_on='consumer'); "
                         f"those that do: {sorted(SPLIT_REPRESENTATIONS)}. Use representation_on='loader'.") from None
