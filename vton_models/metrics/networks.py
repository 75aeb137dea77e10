"""The pretrained networks behind LPIPS, FID, KID and IS, loaded by their own libraries.

Why not re-implement them: a metric is only comparable with published numbers when the exact
network, weights and preprocessing are the ones everybody else runs. So LPIPS is ``lpips.LPIPS``
(its shipped linear layers, torchvision's AlexNet/VGG16 backbone) and the Inception features are
``pytorch_fid.inception.InceptionV3`` (bilinear resize to 299x299, [0, 1] -> [-1, 1]), the same
object ``python -m pytorch_fid`` builds. Both libraries read the backbone from
``$TORCH_HOME/hub/checkpoints``; ``vton_models.weights.require`` is called first so a missing file is
our clear error (file name + ``vton weights prepare``), never a download attempt or random weights.
"""

from __future__ import annotations

import contextlib
import io
import warnings

import torch
from torch import nn

import vton_models  # noqa: F401  - torchvision CPU shim before lpips / pytorch-fid import it
from vton_models import weights

LPIPS_BACKBONES = {"alex": "alexnet", "vgg": "vgg16"}


def load_lpips(net: str = "alex", device: torch.device | str = "cpu") -> nn.Module:
    """``lpips.LPIPS(net=net)`` (version 0.1) with its pretrained backbone, in eval mode."""
    if net not in LPIPS_BACKBONES:
        raise ValueError(f"LPIPS backbone {net!r} not supported; allowed: {sorted(LPIPS_BACKBONES)}")
    weights.require(LPIPS_BACKBONES[net])
    import lpips

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torchvision's `pretrained=` deprecation, inside lpips
        model = lpips.LPIPS(net=net, version="0.1", verbose=False)
    return model.eval().requires_grad_(False).to(device)


class InceptionFeatures(nn.Module):
    """pytorch-fid's InceptionV3: pool3 features (B, 2048) and the 1008-way logits for IS.

    The logits come from the same network's final ``fc`` layer applied to pool3 (what
    torchvision's Inception3 does after pooling; dropout is off in eval), read from the same
    weight file, so FID, KID and IS cost one forward pass per image.
    """

    def __init__(self, dims: int = 2048) -> None:
        super().__init__()
        path = weights.require("inception_fid")
        from pytorch_fid.inception import InceptionV3

        if dims not in InceptionV3.BLOCK_INDEX_BY_DIM:
            raise ValueError(f"FID feature dims {dims}: pytorch-fid offers {sorted(InceptionV3.BLOCK_INDEX_BY_DIM)}")
        self.dims = dims
        blocks = sorted({InceptionV3.BLOCK_INDEX_BY_DIM[dims], InceptionV3.BLOCK_INDEX_BY_DIM[2048]})
        with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self.net = InceptionV3(blocks)
        state = torch.load(path, map_location="cpu", weights_only=True)
        self.fc = nn.Linear(2048, state["fc.weight"].shape[0])
        self.fc.load_state_dict({"weight": state["fc.weight"], "bias": state["fc.bias"]})
        self.eval().requires_grad_(False)

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Images (B, 3, H, W) in [0, 1] -> (FID features (B, dims), 1008 logits).

        ``dims`` < 2048 (tests only: scipy's sqrtm of a 2048x2048 matrix takes ~2 minutes on 2
        cores) average-pools an earlier block exactly as ``pytorch_fid --dims`` does.
        """
        outputs = self.net(images)
        pool = outputs[-1].flatten(1)
        feats = pool if self.dims == 2048 else torch.nn.functional.adaptive_avg_pool2d(outputs[0], 1).flatten(1)
        return feats, self.fc(pool)
