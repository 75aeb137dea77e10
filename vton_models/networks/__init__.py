"""Networks several families share, one network per module: CP-VTON's geometric matching module
(VITON-HD, CP-VTON and the multi-pose families warp with it), pix2pix's 70x70 PatchGAN and the
multi-scale PatchGAN. A network only one family uses lives in that family's folder."""

from vton_models.networks.gmm import GMM
from vton_models.networks.multiscale import MultiscaleDiscriminator
from vton_models.networks.patchgan import PatchGANDiscriminator

__all__ = ["GMM", "MultiscaleDiscriminator", "PatchGANDiscriminator"]
