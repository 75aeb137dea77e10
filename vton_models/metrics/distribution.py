"""Streaming statistics for FID, KID and Inception Score, mergeable across batches and ranks.

Nothing here keeps all features of a test set: a 2,032-image VITON-HD test set at 2048 features
would be 33 MB per image set, and each rank only sees its share. Instead:

* FID: per image set, the sum of features, the sum of their outer products and the count (float64;
  2048x2048 = 32 MB, fixed). Mean and the unbiased covariance (``np.cov``'s ddof=1, as pytorch-fid)
  follow exactly; ``pytorch_fid.fid_score.calculate_frechet_distance`` does the rest.
* KID: needs pairwise kernels, so it keeps a *bounded sample*: bottom-k sampling, each image's
  priority a hash of its sample key. Merging two samples keeps the k smallest priorities of their
  union, so the result does not depend on how images were split over batches or ranks, and with
  n <= k (the default k = 4096 covers VITON-HD's test set) it holds every image. KID is then the
  unbiased polynomial-kernel MMD^2 (d=3, gamma=1/2048, c=1) averaged over 100 random subsets of
  size min(1000, n) with a fixed seed, the convention of torch-fidelity and clean-fid.
* IS: exp(E_x KL(p(y|x) || p(y))) over the whole set (one split): E_x sum_y p log p minus
  sum_y pbar log pbar, from the sum of p, the sum of sum_y p log p and the count. One split, not
  the customary 10, because a split depends on image order, which differs across rank counts;
  this makes our IS exactly reproducible but not equal to a 10-split mean (see docs/evaluation.md).
* IS over splits (``SplitInceptionScore``, for papers that report "mean +- std over 10 splits"):
  every image's logits are kept with its key priority (1008 float64 per image: 16 MB
  for 2,000 images); the set is ordered by priority, not by arrival, and cut into equal contiguous
  splits, so the splits, and the numbers, are the same for any rank count and batch order.

Each accumulator has ``merge`` (in-process, e.g. results of Ray tasks) and ``all_reduce``
(torch.distributed, any backend; a no-op when not initialised).
"""

from __future__ import annotations

import hashlib
from typing import Sequence

import numpy as np
import torch
import torch.distributed as dist

from vton_models.metrics.checks import MetricInputError

FEATURE_DIM = 2048
KID_RESERVOIR = 4096
KID_SUBSETS = 100
KID_SUBSET_SIZE = 1000


def _distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


class FeatureStats:
    """Sum, sum of outer products and count of feature vectors (float64)."""

    def __init__(self, dim: int = FEATURE_DIM) -> None:
        self.dim = dim
        self.total = torch.zeros(dim, dtype=torch.float64)
        self.outer = torch.zeros(dim, dim, dtype=torch.float64)
        self.count = 0

    def update(self, features: torch.Tensor) -> None:
        f = features.detach().to("cpu", torch.float64)
        if f.dim() != 2 or f.shape[1] != self.dim:
            raise MetricInputError(f"features: expected (N, {self.dim}), got {tuple(f.shape)}")
        self.total += f.sum(0)
        self.outer += f.T @ f
        self.count += f.shape[0]

    def merge(self, other: "FeatureStats") -> None:
        self.total += other.total
        self.outer += other.outer
        self.count += other.count

    def all_reduce(self) -> None:
        if not _distributed():
            return
        count = torch.tensor([float(self.count)], dtype=torch.float64)
        for t in (self.total, self.outer, count):
            dist.all_reduce(t, op=dist.ReduceOp.SUM)
        self.count = int(count.item())

    def mean_cov(self) -> tuple[np.ndarray, np.ndarray]:
        if self.count < 2:
            raise MetricInputError(f"FID needs at least 2 images per set, got {self.count}")
        mu = self.total / self.count
        cov = (self.outer - self.count * torch.outer(mu, mu)) / (self.count - 1)
        return mu.numpy(), cov.numpy()


def frechet_distance(a: FeatureStats, b: FeatureStats) -> float:
    """FID between two feature sets via pytorch-fid's own ``calculate_frechet_distance``."""
    from pytorch_fid.fid_score import calculate_frechet_distance

    mu1, s1 = a.mean_cov()
    mu2, s2 = b.mean_cov()
    return float(calculate_frechet_distance(mu1, s1, mu2, s2))


def key_priority(key: str) -> int:
    """A stable pseudo-random 63-bit priority for bottom-k sampling (same on every rank/host)."""
    return int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "big") >> 1


class FeatureReservoir:
    """Bottom-k sample of feature vectors by key priority (see the module docstring)."""

    def __init__(self, capacity: int = KID_RESERVOIR, dim: int = FEATURE_DIM) -> None:
        self.capacity, self.dim = capacity, dim
        self.priorities = torch.empty(0, dtype=torch.int64)
        self.features = torch.empty(0, dim, dtype=torch.float64)

    def update(self, features: torch.Tensor, keys: Sequence[str]) -> None:
        f = features.detach().to("cpu", torch.float64)
        if f.dim() != 2 or f.shape[1] != self.dim or len(keys) != f.shape[0]:
            raise MetricInputError(f"reservoir: features {tuple(f.shape)} and {len(keys)} keys disagree")
        pri = torch.tensor([key_priority(k) for k in keys], dtype=torch.int64)
        self._keep(torch.cat([self.priorities, pri]), torch.cat([self.features, f]))

    def _keep(self, priorities: torch.Tensor, features: torch.Tensor) -> None:
        order = torch.argsort(priorities, stable=True)[: self.capacity]
        self.priorities, self.features = priorities[order], features[order]

    def merge(self, other: "FeatureReservoir") -> None:
        self._keep(torch.cat([self.priorities, other.priorities]), torch.cat([self.features, other.features]))

    def all_reduce(self) -> None:
        if not _distributed():
            return
        gathered: list = [None] * dist.get_world_size()
        dist.all_gather_object(gathered, (self.priorities, self.features))
        self.priorities = torch.empty(0, dtype=torch.int64)
        self.features = torch.empty(0, self.dim, dtype=torch.float64)
        for pri, feat in gathered:
            self._keep(torch.cat([self.priorities, pri]), torch.cat([self.features, feat]))


def kernel_inception_distance(a: FeatureReservoir, b: FeatureReservoir, subsets: int = KID_SUBSETS,
                              subset_size: int = KID_SUBSET_SIZE, seed: int = 0) -> float:
    """Mean unbiased MMD^2 with the cubic polynomial kernel over random subsets (fixed seed)."""
    x, y = a.features.numpy(), b.features.numpy()
    n = min(len(x), len(y), subset_size)
    if n < 2:
        raise MetricInputError(f"KID needs at least 2 images per set, got {len(x)} and {len(y)}")
    rng = np.random.default_rng(seed)
    dim = x.shape[1]
    total = 0.0
    for _ in range(subsets):
        xs = x[rng.choice(len(x), n, replace=False)]
        ys = y[rng.choice(len(y), n, replace=False)]
        kxx = (xs @ xs.T / dim + 1) ** 3
        kyy = (ys @ ys.T / dim + 1) ** 3
        kxy = (xs @ ys.T / dim + 1) ** 3
        total += ((kxx.sum() - np.trace(kxx)) + (kyy.sum() - np.trace(kyy))) / (n * (n - 1)) - 2 * kxy.mean()
    return float(total / subsets)


class InceptionScoreStats:
    """Sum of class probabilities, sum of sum_y p log p, and count (float64)."""

    def __init__(self, classes: int = 1008) -> None:
        self.p_sum = torch.zeros(classes, dtype=torch.float64)
        self.plogp = torch.zeros(1, dtype=torch.float64)
        self.count = 0

    def update(self, logits: torch.Tensor) -> None:
        logp = torch.log_softmax(logits.detach().to("cpu", torch.float64), dim=1)
        p = logp.exp()
        self.p_sum += p.sum(0)
        self.plogp += (p * logp).sum()
        self.count += logits.shape[0]

    def merge(self, other: "InceptionScoreStats") -> None:
        self.p_sum += other.p_sum
        self.plogp += other.plogp
        self.count += other.count

    def all_reduce(self) -> None:
        if not _distributed():
            return
        count = torch.tensor([float(self.count)], dtype=torch.float64)
        for t in (self.p_sum, self.plogp, count):
            dist.all_reduce(t, op=dist.ReduceOp.SUM)
        self.count = int(count.item())

    def score(self) -> float:
        if self.count < 1:
            raise MetricInputError("Inception Score needs at least 1 image")
        pbar = self.p_sum / self.count
        kl = self.plogp.item() / self.count - float((pbar * torch.log(pbar.clamp_min(1e-300))).sum())
        return float(np.exp(kl))


class SplitInceptionScore:
    """IS as the mean and standard deviation over ``splits`` equal parts of the set (OpenAI's
    protocol), the images ordered by sample-key priority (see the module docstring); each split is
    scored by ``InceptionScoreStats``."""

    def __init__(self, splits: int = 10, classes: int = 1008) -> None:
        if splits < 2:
            raise ValueError(f"SplitInceptionScore: splits must be >= 2, got {splits}")
        self.splits, self.classes = splits, classes
        self.priorities = torch.empty(0, dtype=torch.int64)
        self.logits = torch.empty(0, classes, dtype=torch.float64)

    def update(self, logits: torch.Tensor, keys: Sequence[str]) -> None:
        if len(keys) != logits.shape[0]:
            raise MetricInputError(f"split IS: {logits.shape[0]} images and {len(keys)} keys disagree")
        self.priorities = torch.cat([self.priorities, torch.tensor([key_priority(k) for k in keys], dtype=torch.int64)])
        self.logits = torch.cat([self.logits, logits.detach().to("cpu", torch.float64)])

    def merge(self, other: "SplitInceptionScore") -> None:
        self.priorities = torch.cat([self.priorities, other.priorities])
        self.logits = torch.cat([self.logits, other.logits])

    def all_reduce(self) -> None:
        if not _distributed():
            return
        gathered: list = [None] * dist.get_world_size()
        dist.all_gather_object(gathered, (self.priorities, self.logits))
        self.priorities = torch.cat([g[0] for g in gathered])
        self.logits = torch.cat([g[1] for g in gathered])

    def score(self) -> tuple[float, float]:
        """(mean, std) of the splits' Inception Scores (std with ddof 0, as OpenAI's)."""
        n = len(self.priorities)
        if n < self.splits:
            raise MetricInputError(f"Inception Score over {self.splits} splits needs at least {self.splits} images, "
                                   f"got {n}")
        ordered = self.logits[torch.argsort(self.priorities, stable=True)]
        scores = []
        for part in torch.tensor_split(ordered, self.splits):
            stats = InceptionScoreStats(self.classes)
            stats.update(part)
            scores.append(stats.score())
        return float(np.mean(scores)), float(np.std(scores))
