"""Training statistics kept on the training device and reduced across ranks once per log point.

Reading a loss on the host (``float(loss)``, ``.item()``) waits for the device to finish everything
queued before it; done for every term of every micro-batch it serialises the GPU with the Python
loop. StyleGAN3's ``training_stats`` is the model: values are accumulated as device tensors, and
at a log point all of them go through ONE all-reduce and ONE copy to the host. What is reported
is the mean over the steps since the last log point *and over ranks* (not rank 0's alone).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.distributed as dist

#: ``mean``: average of every value added; ``total``: sum per rank (e.g. skipped steps), averaged
#: over ranks; ``last``: the latest value per rank, averaged over ranks.
KINDS = ("mean", "total", "last")


@dataclass
class _Series:
    kind: str
    total: torch.Tensor | float = 0.0
    count: int = 0
    extra: list = field(default_factory=list)


class TrainingStats:
    def __init__(self, device: torch.device) -> None:
        self.device = device
        self._series: dict[str, _Series] = {}

    def add(self, name: str, value: torch.Tensor | float, kind: str = "mean") -> None:
        """Record ``value`` (a 0-d tensor stays on its device; no host synchronisation)."""
        series = self._series.get(name)
        if series is None:
            if kind not in KINDS:
                raise ValueError(f"stats: kind {kind!r} is not one of {KINDS}")
            series = self._series[name] = _Series(kind)
        if torch.is_tensor(value):
            value = value.detach().to(torch.float64)
        if series.kind == "last":
            series.total, series.count = value, 1
        else:
            series.total = series.total + value
            series.count += 1

    def reduce(self) -> dict[str, float]:
        """Every statistic since the last call, reduced over ranks (collective: every rank calls it
        at the same step); clears them."""
        world = dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1
        names = sorted(self._series)
        if world > 1:  # ranks may not have seen the same names (a term computed on one rank only)
            gathered: list[list[str]] = [[] for _ in range(world)]
            dist.all_gather_object(gathered, names)
            names = sorted(set().union(*gathered))
        values, counts = [], []
        for name in names:
            series = self._series.get(name)
            total = series.total if series is not None else 0.0
            values.append(total.reshape(()) if torch.is_tensor(total) else torch.tensor(float(total), dtype=torch.float64))
            counts.append(float(series.count) if series is not None else 0.0)
        if not names:
            return {}
        packed = torch.cat([torch.stack([v.to(self.device) for v in values]),
                            torch.tensor(counts, dtype=torch.float64, device=self.device)])
        if world > 1:
            dist.all_reduce(packed, op=dist.ReduceOp.SUM)
        reduced = packed.tolist()  # the one host synchronisation per log point
        sums, totals = reduced[:len(names)], reduced[len(names):]
        out = {}
        for name, value, count in zip(names, sums, totals):
            kind = self._series[name].kind if name in self._series else "mean"
            if kind == "mean":
                out[name] = value / count if count else float("nan")
            else:
                out[name] = value / world
        self._series.clear()
        return out
