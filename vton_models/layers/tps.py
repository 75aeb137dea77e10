"""Thin-plate-spline (TPS) sampling grid from a regular grid of control points (CP-VTON / VITON-HD GMM).

The GMM regresses ``theta``: offsets of ``grid_size x grid_size`` control points from their rest
positions. A TPS through the moved points maps every output pixel to a source location, which
``F.grid_sample`` then reads. We keep the *official* conventions, because imported VITON-HD
checkpoints regress theta in them:

* control points lie on ``linspace(-extent, extent, grid_size)`` with ``extent = 0.9`` (VITON-HD;
  CP-VTON used 1.0); the output pixel grid spans the same ``[-extent, extent]`` range;
* ``theta[:, :N]`` are x offsets and ``theta[:, N:]`` y offsets, and control point ``k`` sits at
  ``x = coords[k // G]``, ``y = coords[k % G]`` (x varies slowest: the official ``meshgrid`` swap);
* the radial basis is ``U(r^2) = r^2 log r^2`` (not ``r^2 log r``), again as the official code.

Unlike the official implementation, the dense basis ``[U | 1 x y] @ L^-1`` is computed once per
output size and cached, so a forward pass is a single (B, N) x (N, HW) matrix product.
"""

from __future__ import annotations

import torch
from torch import nn

Tensor = torch.Tensor


def _radial(d2: Tensor) -> Tensor:
    """``d2 * log(d2)`` with the removable singularity at 0 set to 0."""
    return torch.where(d2 > 0, d2 * torch.log(d2.clamp_min(1e-30)), torch.zeros_like(d2))


class TPSGridGen(nn.Module):
    """theta (B, 2N) -> sampling grid (B, H, W, 2) in ``grid_sample`` (x, y) order.

    Holds no parameters and no persistent buffers, so a GMM's state dict is exactly the official one.
    """

    def __init__(self, grid_size: int = 5, extent: float = 0.9) -> None:
        super().__init__()
        if grid_size < 2:
            raise ValueError(f"TPSGridGen: grid_size must be >= 2, got {grid_size}")
        if not 0 < extent <= 1:
            raise ValueError(f"TPSGridGen: extent must be in (0, 1], got {extent}")
        self.grid_size, self.extent = grid_size, float(extent)
        self.num_points = grid_size * grid_size
        coords = torch.linspace(-extent, extent, grid_size, dtype=torch.float64)
        px = coords.repeat_interleave(grid_size)  # k // G
        py = coords.repeat(grid_size)              # k %  G
        n = self.num_points
        d2 = (px[:, None] - px[None]) ** 2 + (py[:, None] - py[None]) ** 2
        p = torch.stack([torch.ones(n, dtype=torch.float64), px, py], 1)
        L = torch.zeros(n + 3, n + 3, dtype=torch.float64)
        L[:n, :n], L[:n, n:], L[n:, :n] = _radial(d2), p, p.T
        # Only the columns that multiply the point targets are needed (targets of the affine rows are 0).
        self.register_buffer("l_inv", torch.linalg.inv(L)[:, :n].contiguous(), persistent=False)
        self.register_buffer("base_x", px, persistent=False)
        self.register_buffer("base_y", py, persistent=False)
        self._cache: dict[tuple[int, int, torch.device], Tensor] = {}

    def regular_grid(self, size: tuple[int, int], device: torch.device | None = None) -> Tensor:
        """(H, W, 2) float64: the output pixel positions on ``[-extent, extent]`` (official layout)."""
        h, w = size
        ys = torch.linspace(-self.extent, self.extent, h, dtype=torch.float64, device=device)
        xs = torch.linspace(-self.extent, self.extent, w, dtype=torch.float64, device=device)
        gy, gx = torch.meshgrid(ys, xs, indexing="ij")
        return torch.stack([gx, gy], -1)

    def _basis(self, size: tuple[int, int], device: torch.device) -> Tensor:
        """(H*W, N) float64 such that ``warped = basis @ control_points``; cached per size/device."""
        key = (int(size[0]), int(size[1]), device)
        basis = self._cache.get(key)
        if basis is None:
            pts = self.regular_grid(size, device).reshape(-1, 2)
            d2 = (pts[:, :1] - self.base_x.to(device)[None]) ** 2 + (pts[:, 1:] - self.base_y.to(device)[None]) ** 2
            phi = torch.cat([_radial(d2), torch.ones_like(pts[:, :1]), pts], 1)  # (HW, N + 3)
            basis = phi @ self.l_inv.to(device)
            self._cache[key] = basis
        return basis

    def control_points(self, theta: Tensor) -> tuple[Tensor, Tensor]:
        """Absolute control point positions (x, y), each (B, N): rest positions plus theta's offsets."""
        n = self.num_points
        if theta.dim() != 2 or theta.shape[1] != 2 * n:
            raise ValueError(f"TPSGridGen: theta must be (B, {2 * n}) for grid_size {self.grid_size}, "
                             f"got {tuple(theta.shape)}")
        return theta[:, :n] + self.base_x.to(theta), theta[:, n:] + self.base_y.to(theta)

    def forward(self, theta: Tensor, size: tuple[int, int]) -> Tensor:
        qx, qy = self.control_points(theta)
        basis = self._basis(size, theta.device).to(theta.dtype)
        gx = qx @ basis.T  # (B, HW)
        gy = qy @ basis.T
        return torch.stack([gx, gy], -1).reshape(theta.shape[0], size[0], size[1], 2)
