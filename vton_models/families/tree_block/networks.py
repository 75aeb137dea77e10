"""Seed 002's networks (FAMILIES.md §2.3; ngf 64, InstanceNorm, 256x192), each built from a shared
project network, with the parameter counts ``vton models summary`` shows:

- parse net P: CP-VTON's U-Net (``vton_models/networks/unet.py``), 39 -> 20 LIP logits,
  21,382,036 parameters; its discriminator D_P a PatchGAN on [condition 39; parse 20], 2,821,185;
- GMM: the project's (CP-VTON's) GMM on [target shape 1, target garment region 1, target pose 18]
  and the cloth, grid 5, extent 1.0, 19,055,602;
- appearance G_A: pix2pix's ResnetGenerator with nine Tree-Blocks, 26 -> 4 (render + composition
  mask), 25,610,884 (11,448,196 with ResNet blocks, the paper's SRB-VTON); D_A a PatchGAN on
  [source person; image], 2,766,913;
- face G_F: the same generator on 64x64 crops with three Tree-Blocks, [source face; coarse target
  face] 6 -> 3, 9,025,347; D_F a PatchGAN on [source face; face], 2,766,913.

The discriminators drop spectral norm (the paper's pix2pix baseline has none).
"""

from __future__ import annotations

from collections.abc import Sequence

from vton_models.networks.gmm import GMM
from vton_models.networks.patchgan import PatchGANDiscriminator
from vton_models.networks.resnet_generator import ResnetGenerator
from vton_models.networks.unet import CPVTONUNet
from vton_models.representation.parse import NUM_LIP_LABELS

POSE_CHANNELS = 18
#: P's condition: source parse one-hot, cloth mask, target pose.
PARSE_CONDITION_CHANNELS = NUM_LIP_LABELS + 1 + POSE_CHANNELS
#: GMM person input: target shape, target garment region, target pose.
GMM_PERSON_CHANNELS = 1 + 1 + POSE_CHANNELS
#: G_A input: source without its garment, soft target parse, warped cloth.
APPEARANCE_CHANNELS = 3 + NUM_LIP_LABELS + 3


def parse_net(ngf: int = 64) -> CPVTONUNet:
    return CPVTONUNet(PARSE_CONDITION_CHANNELS, NUM_LIP_LABELS, ngf)


def parse_discriminator(ndf: int = 64) -> PatchGANDiscriminator:
    return PatchGANDiscriminator(PARSE_CONDITION_CHANNELS + NUM_LIP_LABELS, ndf, use_spectral_norm=False)


def gmm(image_size: tuple[int, int], grid_size: int = 5, ngf: int = 64) -> GMM:
    return GMM(GMM_PERSON_CHANNELS, 3, image_size, image_size, grid_size, ngf, tps_extent=1.0)


def appearance_generator(ngf: int = 64, n_blocks: int = 9, block: str = "tree",
                         dilations: Sequence[int] = (1, 2, 4, 8)) -> ResnetGenerator:
    return ResnetGenerator(APPEARANCE_CHANNELS, 4, ngf, n_blocks, block, dilations)


def face_generator(ngf: int = 64, n_blocks: int = 3, block: str = "tree",
                   dilations: Sequence[int] = (1, 2, 4, 8)) -> ResnetGenerator:
    return ResnetGenerator(6, 3, ngf, n_blocks, block, dilations)


def pair_discriminator(ndf: int = 64) -> PatchGANDiscriminator:
    """D_A and D_F: a PatchGAN on [source; image] (6 channels)."""
    return PatchGANDiscriminator(6, ndf, use_spectral_norm=False)
