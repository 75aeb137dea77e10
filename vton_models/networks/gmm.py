"""VITON-HD geometric matching module (GMM): regress a TPS warp of the in-shop cloth onto the person.

Two feature extractors (person representation A: cloth-region mask 1 + pose 3 + agnostic image 3 = 7
channels; cloth B: 3 channels), L2-normalised features, a dense correlation volume, a regression
network to ``2 * grid_size**2`` control-point offsets (tanh-bounded), and a TPS grid. Official sizes:
inputs at 256x192, grid at the full 1024x768, ngf 64, grid 5x5: 19,042,290 parameters.

Layer names (``extractionA.model.N``, ``regression.conv.N``, ``regression.linear``) match the official
checkpoint; note the official extractor applies ReLU *before* BatchNorm, which we keep for
checkpoint compatibility.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from vton_models.layers.tps import TPSGridGen

Tensor = torch.Tensor


class FeatureExtraction(nn.Module):
    """``num_layers`` stride-2 4x4 convs (widths ngf, 2ngf, ... capped at 512), then two 3x3 at 512."""

    def __init__(self, input_channels: int, ngf: int = 64, num_layers: int = 4, width: int = 512) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(input_channels, ngf, 4, 2, 1), nn.ReLU(), nn.BatchNorm2d(ngf)]
        nf = ngf
        for _ in range(1, num_layers):
            prev, nf = nf, min(nf * 2, width)
            layers += [nn.Conv2d(prev, nf, 4, 2, 1), nn.ReLU(), nn.BatchNorm2d(nf)]
        layers += [nn.Conv2d(nf, width, 3, 1, 1), nn.ReLU(), nn.BatchNorm2d(width)]
        layers += [nn.Conv2d(width, width, 3, 1, 1), nn.ReLU()]
        self.model = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.model(x)


def feature_correlation(a: Tensor, b: Tensor) -> Tensor:
    """(B, C, h, w) x2 -> (B, h*w, h, w): channel ``x*h + y`` is the similarity of A at (y, x) to every B.

    The (w, h) flattening order of A is the official one; the regression's first conv depends on it.
    """
    bsz, c, h, w = a.shape
    a = a.permute(0, 3, 2, 1).reshape(bsz, w * h, c)
    return torch.bmm(a, b.reshape(bsz, c, h * w)).reshape(bsz, w * h, h, w)


class FeatureRegression(nn.Module):
    """Correlation volume -> tanh(linear(conv features)): ``output_size`` control-point offsets."""

    def __init__(self, input_channels: int, spatial: tuple[int, int], output_size: int) -> None:
        super().__init__()
        self.conv = nn.Sequential(
            nn.Conv2d(input_channels, 512, 4, 2, 1), nn.BatchNorm2d(512), nn.ReLU(),
            nn.Conv2d(512, 256, 4, 2, 1), nn.BatchNorm2d(256), nn.ReLU(),
            nn.Conv2d(256, 128, 3, padding=1), nn.BatchNorm2d(128), nn.ReLU(),
            nn.Conv2d(128, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(),
        )
        h, w = spatial
        for _ in range(2):  # the two 4x4 stride-2 pad-1 convs
            h, w = (h - 2) // 2 + 1, (w - 2) // 2 + 1
        if h < 1 or w < 1:
            raise ValueError(f"FeatureRegression: correlation map {tuple(spatial)} is too small")
        self.linear = nn.Linear(64 * h * w, output_size)

    def forward(self, x: Tensor) -> Tensor:
        x = self.conv(x)
        return torch.tanh(self.linear(x.reshape(x.shape[0], -1)))


class GMM(nn.Module):
    """``(inputA, inputB) -> (theta, grid)``; ``grid`` is (B, H, W, 2) at ``output_size`` for ``grid_sample``.

    ``input_size`` fixes the correlation volume's size (inputs must be given at that size); the grid
    can be produced at any size (official: 1024x768 from 256x192 inputs), since a TPS is resolution-free.
    """

    def __init__(self, input_a_channels: int = 7, input_b_channels: int = 3, input_size: tuple[int, int] = (256, 192),
                 output_size: tuple[int, int] = (1024, 768), grid_size: int = 5, ngf: int = 64,
                 tps_extent: float = 0.9) -> None:
        super().__init__()
        h, w = input_size
        if h % 16 or w % 16 or h < 64 or w < 64:
            raise ValueError(f"GMM: input_size {tuple(input_size)} must be divisible by 16 (four stride-2 "
                             "extractor convs) and at least 64x64 (two more in the regression)")
        self.input_a_channels, self.input_b_channels = input_a_channels, input_b_channels
        self.input_size, self.output_size = (h, w), tuple(output_size)
        self.extractionA = FeatureExtraction(input_a_channels, ngf)
        self.extractionB = FeatureExtraction(input_b_channels, ngf)
        fh, fw = h // 16, w // 16
        self.regression = FeatureRegression(fh * fw, (fh, fw), 2 * grid_size * grid_size)
        self.gridGen = TPSGridGen(grid_size, tps_extent)

    def features(self, input_a: Tensor, input_b: Tensor) -> tuple[Tensor, Tensor]:
        """Both extractors' raw features (before L2 normalisation), what an auxiliary head reads."""
        for name, t, c in (("inputA", input_a, self.input_a_channels), ("inputB", input_b, self.input_b_channels)):
            if t.dim() != 4 or t.shape[1] != c or tuple(t.shape[2:]) != self.input_size:
                raise ValueError(f"GMM: {name} must be (B, {c}, {self.input_size[0]}, {self.input_size[1]}), "
                                 f"got {tuple(t.shape)}")
        return self.extractionA(input_a), self.extractionB(input_b)

    def warp_from(self, fa: Tensor, fb: Tensor, output_size: tuple[int, int] | None = None) -> tuple[Tensor, Tensor]:
        """(theta, grid) from the raw features."""
        theta = self.regression(feature_correlation(F.normalize(fa, dim=1), F.normalize(fb, dim=1)))
        return theta, self.gridGen(theta, output_size or self.output_size)

    def forward(self, input_a: Tensor, input_b: Tensor, output_size: tuple[int, int] | None = None) -> tuple[Tensor, Tensor]:
        return self.warp_from(*self.features(input_a, input_b), output_size)


def sample_garment(cloth: Tensor, cloth_mask: Tensor, grid: Tensor,
                   align_corners: bool = False) -> tuple[Tensor, Tensor]:
    """(warped cloth, warped mask) on a GMM's grid, as CP-VTON samples them: the cloth with border
    padding (no dark seam where the grid leaves the image), the mask with zeros (nothing outside it)."""
    grid = grid.to(cloth.dtype)
    warped = F.grid_sample(cloth, grid, padding_mode="border", align_corners=align_corners)
    warped_mask = F.grid_sample(cloth_mask, grid, padding_mode="zeros", align_corners=align_corners)
    return warped, warped_mask
