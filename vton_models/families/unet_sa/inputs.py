"""Seed 000's inputs: the 41-channel person representation, built whole in the loader or in two halves.

The split form exists because at 512x384 the float32 inputs are ~40 MB a sample, while what they
are computed from (two uint8 images, a uint8 mask, a uint8 label map and 18 keypoints) is 1.6 MB:
the loader workers ship the compact arrays and the training process expands each batch with torch
on its device (bench/p1_stream.py measured collation alone at ~48 ms a sample for the float form).
``unet_sa_expand`` of a collated ``unet_sa_compact`` batch equals the stacked ``unet_sa_representation``
bit for bit (same keys, shapes, dtypes, values).
"""

from __future__ import annotations

from typing import Any, Mapping, MutableMapping

import numpy as np
import torch
from torch import Tensor

from vton_models.families.viton_hd.inputs import pose_image_source, viton_hd_representation
from vton_models.representation.base import Representation
from vton_models.representation.device import network_rgb_, parse_onehot_, pose_heatmaps_, reusable
from vton_models.representation.image import AGNOSTIC_GRAY, cloth_agnostic_rgb, to_network_rgb
from vton_models.representation.parse import GARMENT_LABELS, NUM_LIP_LABELS, check_labels, parse_onehot
from vton_models.representation.pose import pose18, pose_heatmaps, pose_profiles
from vton_models.representation.sample import DecodedSample


def unet_sa_representation(sample: DecodedSample, sigma: float = 3.0) -> dict[str, np.ndarray]:
    """Seed paper 000's inputs: ``inputs`` (41, H, W) = agnostic RGB [-1, 1] (0-2), 18 pose
    heatmaps [0, 1] (3-20, ``POSE18_NAMES`` order), 20-class parse one-hot (21-40); plus the
    targets and panels a recipe needs: ``person``, ``cloth``, ``agnostic`` (3, H, W) in [-1, 1],
    ``cloth_mask`` (1, H, W), ``parse`` (H, W) int64.
    """
    h, w = sample.size
    inputs = np.empty((3 + 18 + NUM_LIP_LABELS, h, w), np.float32)  # filled in place, channel block by block
    agnostic = inputs[0:3]
    to_network_rgb(cloth_agnostic_rgb(sample.person, sample.parse), out=agnostic)
    pose_heatmaps(pose18(sample.pose, sample.pose_format), (h, w), sigma=sigma, out=inputs[3:21])
    parse_onehot(sample.parse, NUM_LIP_LABELS, out=inputs[21:])
    return {
        "inputs": inputs,
        "person": to_network_rgb(sample.person),
        "cloth": to_network_rgb(sample.cloth),
        "cloth_mask": (np.asarray(sample.cloth_mask) > 0).astype(np.float32)[None],
        "agnostic": agnostic,
        "parse": np.asarray(sample.parse).astype(np.int64),
    }


def unet_sa_compact(sample: DecodedSample, sigma: float = 3.0) -> dict[str, np.ndarray]:
    """What a loader worker ships for ``unet_sa``: uint8 images, mask and labels, and the 1-D
    factors of the 18 pose heatmaps (``pose_gy`` (18, H), ``pose_gx`` (18, W), ``pose_c`` (18,)).

    Labels are range-checked here, in the worker, so a bad sample is still skipped and counted
    by the stream instead of failing in the training process.
    """
    check_labels(sample.parse, NUM_LIP_LABELS, f"sample '{sample.key}' parse")
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
    parse = reusable(out, "parse", (b, h, w), torch.int64, device).copy_(parse_u8)
    inputs = reusable(out, "inputs", (b, 3 + 18 + NUM_LIP_LABELS, h, w), torch.float32, device)
    person_net = network_rgb_(person, reusable(out, "person", (b, 3, h, w), torch.float32, device))
    garment = torch.zeros_like(parse, dtype=torch.bool)
    for label in GARMENT_LABELS:
        garment |= parse_u8 == label
    # The gray in network units, computed in float32 exactly as the numpy builder does.
    gray = torch.tensor(AGNOSTIC_GRAY, dtype=torch.float32, device=device) / 127.5 - 1.0
    torch.where(garment.unsqueeze(1), gray, person_net, out=inputs[:, 0:3])
    pose_heatmaps_(batch["pose_gy"], batch["pose_gx"], batch["pose_c"], inputs[:, 3:21])
    parse_onehot_(parse, inputs[:, 21:])
    cloth_mask = reusable(out, "cloth_mask", (b, 1, h, w), torch.float32, device)
    cloth_mask.copy_(batch["cloth_mask_u8"].to(device, non_blocking=True).unsqueeze(1) > 0)
    return {
        "inputs": inputs,
        "person": person_net,
        "cloth": network_rgb_(batch["cloth_u8"].to(device, non_blocking=True),
                              reusable(out, "cloth", (b, 3, h, w), torch.float32, device)),
        "cloth_mask": cloth_mask,
        "agnostic": inputs[:, 0:3],
        "parse": parse,
    }


#: Seed 000's representation: built whole in the loader, or compact there and expanded on the device.
UNET_SA = Representation("unet_sa", build=unet_sa_representation, compact=unet_sa_compact, expand=unet_sa_expand)

_GMM_PREFIX = "gmm."


def unet_sa_with_gmm_representation(sample: DecodedSample, sigma: float = 3.0) -> dict[str, np.ndarray]:
    """``unet_sa``'s fields plus, prefixed ``gmm.``, what a frozen ``viton_hd.gmm`` stage reads to warp
    the garment (``model.garment_input=warped``); the prefix keeps VITON-HD's ``agnostic`` apart."""
    out = unet_sa_representation(sample, sigma)
    out.update({_GMM_PREFIX + key: value for key, value in viton_hd_representation(sample).items()})
    return out


def gmm_fields(batch: Mapping[str, Any]) -> dict[str, Any]:
    """The ``gmm.``-prefixed fields of a ``unet_sa_with_gmm`` batch, under the GMM's own names."""
    return {key[len(_GMM_PREFIX):]: value for key, value in batch.items() if key.startswith(_GMM_PREFIX)}


#: Built whole in the loader (VITON-HD's drawing has no device form).
UNET_SA_WITH_GMM = Representation("unet_sa_with_gmm", build=unet_sa_with_gmm_representation,
                                  reads=("pose_img.png", "cloth_mask.png"), describe_data=pose_image_source)
