"""The run's bad samples: counted on every rank, summed across ranks, judged against the dataset.

The stream replaces a sample it cannot decode and says so in the batch (``__bad__``); a loader
worker only sees its own reads, so its judgement is either too early (a few bad among its first
reads stopped runs whose dataset-wide rate was under the limit) or too late. Here every rank's
counts are summed at each log point and before every checkpoint (collectives every rank reaches at
the same step), kept in the checkpointed ``TrainingPosition`` so a resumed run keeps counting from
where it was, logged as metrics, written on the registered version as tags (the promotion gate
reads them), and judged once: the run stops when its bad samples outnumber what
``data.max_bad_fraction`` allows in the data read so far, never below the whole manifest (so an
early cluster of bad samples in a clean-enough dataset does not stop it).
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.distributed as dist

from orchestrator.checkpoints.state import TrainingPosition
from shards.stream import TooManyBadSamplesError

#: Tags on the run and the registered version (``vton promote --max-bad-fraction`` reads the last).
BAD_SAMPLES_TAG, SAMPLES_READ_TAG, BAD_FRACTION_TAG = "bad_samples", "samples_read", "bad_sample_fraction"


class BadSampleCounter:
    def __init__(self, position: TrainingPosition, limit: float, dataset_samples: int, manifest: str,
                 device: torch.device) -> None:
        self.position, self.limit, self.dataset_samples = position, limit, dataset_samples
        self.manifest, self.device = manifest, device
        self._bad = self._read = 0  # this rank's, since the last settle

    def add(self, batch: Mapping) -> None:
        """One batch taken from the stream (its ``__bad__`` is a host tensor: no device sync)."""
        bad = int(batch.get("__bad__", 0))
        self._bad += bad
        self._read += len(batch.get("__key__", ())) + bad

    def settle(self) -> dict[str, float]:
        """Collective: sum every rank's counts into the position; the run's totals as metrics.
        Raises ``TooManyBadSamplesError`` on every rank alike when the run is over the limit."""
        counts = torch.tensor([self._bad, self._read], dtype=torch.float64, device=self.device)
        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            dist.all_reduce(counts, op=dist.ReduceOp.SUM)
        bad, read = (int(v) for v in counts.tolist())
        self._bad = self._read = 0
        self.position.bad_samples += bad
        self.position.samples_read += read
        self.judge()
        return {"data/bad_samples": float(self.position.bad_samples),
                "data/samples_read": float(self.position.samples_read), "data/bad_fraction": self.fraction}

    @property
    def fraction(self) -> float:
        return self.position.bad_samples / max(1, self.position.samples_read)

    def judge(self) -> None:
        bad, read = self.position.bad_samples, self.position.samples_read
        if bad > self.limit * max(read, self.dataset_samples):
            raise TooManyBadSamplesError(
                f"{bad} of the {read} samples this run read (all ranks) were bad ({self.fraction:.1%}): more than "
                f"data.max_bad_fraction {self.limit:.1%} of the {self.dataset_samples} samples of {self.manifest} "
                f"allows; run `vton shard verify {self.manifest}` to list every damaged sample")

    def tags(self) -> dict[str, str]:
        return {BAD_SAMPLES_TAG: str(self.position.bad_samples), SAMPLES_READ_TAG: str(self.position.samples_read),
                BAD_FRACTION_TAG: f"{self.fraction:.6g}"}
