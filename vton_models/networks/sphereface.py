"""SphereFace's 20-layer face network (Liu et al., CVPR 2017), the identity embedding seed 004's
face-identity loss reads ("SphereFaceNet", 512-d ``fc5``).

Parameter names follow the public PyTorch port's released file (``sphere20a_20171020.pth`` of
clcarwin/sphereface_pytorch) so that file loads strictly: ``conv<stage>_<i>``, ``relu<stage>_<i>``
(PReLU), ``fc5``, and ``fc6.weight`` (its angular classifier over 10,574 CASIA-WebFace identities,
kept only so the file loads; the embedding is ``fc5``). Four stages of a stride-2 3x3 conv + PReLU
followed by 1, 2, 4, 1 residual units of two 3x3 conv + PReLU; input 112x96, BGR, ``(x - 127.5) / 128``.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

INPUT_SIZE = (112, 96)
EMBEDDING = 512
#: (stage, input channels, width, residual units)
STAGES = ((1, 3, 64, 1), (2, 64, 128, 2), (3, 128, 256, 4), (4, 256, 512, 1))


class _AngularClassifier(nn.Module):
    """The release's ``fc6`` (an angular-margin classifier): its weight only, unused here."""

    def __init__(self, features: int, classes: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(features, classes))


class SphereFace20a(nn.Module):
    """(B, 3, 112, 96) BGR in ``(x - 127.5) / 128`` -> (B, 512) identity embeddings (``fc5``)."""

    def __init__(self, classes: int = 10574) -> None:
        super().__init__()
        for stage, cin, width, units in STAGES:
            self.add_module(f"conv{stage}_1", nn.Conv2d(cin, width, 3, 2, 1))
            self.add_module(f"relu{stage}_1", nn.PReLU(width))
            for i in range(2, 2 + 2 * units):
                self.add_module(f"conv{stage}_{i}", nn.Conv2d(width, width, 3, 1, 1))
                self.add_module(f"relu{stage}_{i}", nn.PReLU(width))
        h, w = INPUT_SIZE
        self.fc5 = nn.Linear(512 * (h // 16) * (w // 16), EMBEDDING)
        self.fc6 = _AngularClassifier(EMBEDDING, classes)

    def _unit(self, stage: int, i: int, x: Tensor) -> Tensor:
        return getattr(self, f"relu{stage}_{i}")(getattr(self, f"conv{stage}_{i}")(x))

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() != 4 or tuple(x.shape[1:]) != (3, *INPUT_SIZE):
            raise ValueError(f"SphereFace20a expects (B, 3, {INPUT_SIZE[0]}, {INPUT_SIZE[1]}) face crops, "
                             f"got {tuple(x.shape)}")
        for stage, _, _, units in STAGES:
            x = self._unit(stage, 1, x)
            for u in range(units):
                a = 2 + 2 * u
                x = x + self._unit(stage, a + 1, self._unit(stage, a, x))
        return self.fc5(x.flatten(1))
