"""Manifest URL -> endless, resumable stream of training batches (dicts of torch tensors).

The plan (all of it computed from the manifest, identically on every rank, before any I/O)
-----------------------------------------------------------------------------------------
* ``N`` samples; ``R`` ranks (``world_size``); batch size ``b``; ``W`` plan workers
  (``max(1, loader_workers)``). Every rank yields exactly ``B = batches_per_epoch`` batches per
  epoch, default ``ceil(N / (R * b))``.
* **Epoch sequence.** Epoch ``e`` permutes the shards with ``rng(seed, e)`` and concatenates their
  samples in tar order: a sequence of length ``N``. It is read cyclically, so position ``p`` means
  sample ``p mod N``; rank ``r`` owns positions ``[r*B*b, (r+1)*B*b)``.
  With the default ``B`` every sample appears at least once per epoch across ranks, samples are
  disjoint across ranks and workers, and only the ``R*B*b - N < R*b`` positions after the wrap
  repeat samples (the "padding" DistributedSampler also does). A fixed ``batches_per_epoch`` just
  reads fewer or more positions of the same cyclic sequence.
* **Roles.** Step ``k`` of a rank's epoch belongs to role ``k mod W``. Role ``q`` owns the next
  ``b * |{k < B : k = q mod W}|`` positions of the rank's range (roles in order), cut into *blocks*
  of ``L = b * ceil(shuffle_buffer / b)`` positions. A block is fetched with one ranged GET per
  shard it touches (the manifest's per-sample offsets give the byte ranges), fully permuted with
  ``rng(seed, e, r, q, block)`` (this is the sample shuffle buffer: a uniform shuffle of ``L``
  consecutive samples of the shard-shuffled sequence), and cut into ``L/b`` batches.
* **DataLoader workers.** torch's DataLoader asks its workers round-robin and returns results in
  order, so the ``t``-th batch since ``iter_from`` started comes from worker ``t mod W``. Worker
  ``i`` therefore plays, in epoch ``e``, the role ``(i - T(e)) mod W`` where ``T(e)`` is the
  stream index of step 0 of epoch ``e``; each worker yields exactly its steps, so the output order
  is exactly step order. Batch content depends only on (epoch, step), never on which process built it.
* **Bad samples.** A sample that fails to parse or decode (bad JPEG, truncated member, missing
  modality, parse label out of range, size disagreeing with meta) or whose member bytes differ from
  their build-time digest (``check_digests``) is logged with its key, counted,
  and replaced by the next good sample of the same block (in block order, cyclically), so a batch
  is always full and the batch counts above always hold. Each batch's ``__bad__`` says how many bad
  samples were met while filling it, so a consumer can judge the whole run (the trainer sums them
  across ranks and checkpoints them). Each process (loader worker) also judges its own counts, at
  a floor of the whole manifest: it raises ``TooManyBadSamplesError`` (counts by reason, the last
  bad keys) once ``bad > max_bad_fraction * max(read, N)``, i.e. only when its bad samples alone
  are more than the limit allows in the entire dataset. (A floor of a few reads per worker stopped
  runs whose dataset-wide rate was under the limit: 2 bad among one worker's first 20 reads.) A tar member with an absolute path, a ``..`` component
  or a link raises ``UnsafeMemberError`` (naming shard and member) at once.
* **Batches** are the representation's arrays (``get_representation(cfg.representation)(sample)``)
  stacked into tensors, plus ``__key__`` (sample keys) and ``__bad__`` (bad samples met filling it).
  With ``reuse_buffers=True`` they are written into a ring of shared-memory buffers (much faster
  for 512x384 float32 batches, see ``shards.collate``) and are valid until the next batch is
  requested; the content is the same either way.
* **Where the representation is built** (``representation_on``): ``"loader"`` builds the float
  arrays in the workers; ``"consumer"`` has the workers ship the representation's compact form
  (uint8 images and labels, keypoints: ~25x fewer bytes at 512x384) and expands each batch with
  torch in the iterating process, on ``device`` — what a GPU trainer wants. Same batches either way.

Resume guarantee
----------------
For a fixed manifest, ``StreamConfig`` (including ``loader_workers``, ``batch_size``,
``shuffle_buffer``, ``seed``, ``batches_per_epoch``), ``rank`` and ``world_size``:
``iter_from(StreamPosition(e, s))`` yields exactly — same samples, same order, bit-identical tensors —
the batches that an uninterrupted ``iter_from(StreamPosition(0, 0))`` yields from its
``(e * B + s)``-th batch on. Resuming reads at most one block (``L`` samples) per worker that it
does not use and decodes nothing it does not yield; nothing before that block is fetched.
Changing ``loader_workers``, ``world_size`` or ``batch_size`` changes which samples form which
batch (each epoch still covers the data as described). The bad-sample *threshold* is evaluated on
counts since ``iter_from`` started, so it may trip at a different step after a resume.
"""

from __future__ import annotations

import logging
import math
from collections import Counter, deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Generator, Iterator, Sequence

import numpy as np
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from shards.collate import BufferRing, collate, handing_back, tune_worker_memory
from shards.decode import BadSampleError, decode_sample
from shards.digests import damaged_members
from shards.manifest import Manifest, ShardRecord
from shards.store import ObjectStore, RangeNotSatisfiableError
from shards.tario import CorruptSampleError, parse_sample
from shards.transforms import AugmentConfig, Augmenter
from vton_models.registry import get_representation

log = logging.getLogger("shards.stream")


#: Where a stream may build the representation (``StreamConfig.representation_on``).
REPRESENTATION_ON: tuple[str, ...] = ("loader", "consumer")


class TooManyBadSamplesError(RuntimeError):
    """The fraction of unusable samples passed ``max_bad_fraction``."""


@dataclass(frozen=True)
class StreamConfig:
    """What a training run asks of the data plane (see the module docstring for the semantics)."""

    manifest_url: str
    batch_size: int
    image_size: tuple[int, int]  # (H, W) of every output
    representation: str = "unet_sa"
    representation_options: dict[str, Any] = field(default_factory=dict)
    loader_workers: int = 1
    shuffle_buffer: int = 256
    augment: bool = True
    augment_options: dict[str, Any] = field(default_factory=dict)  # shards.transforms.AugmentConfig fields
    seed: int = 0
    max_bad_fraction: float = 0.05
    #: Check every member against the sample's build-time sha256 (``shards.digests``); a mismatch
    #: is a bad sample ("digest mismatch"). Costs one sha256 of bytes already in memory.
    check_digests: bool = True
    batches_per_epoch: int | None = None
    prefetch_factor: int = 2  # batches each loader worker keeps ready
    #: Reuse a small ring of shared-memory batch buffers (much faster at 512x384; see
    #: shards.collate). Then a batch is only valid until the next one is requested.
    reuse_buffers: bool = False
    #: Where the representation's float tensors are built: "loader" (numpy, in the loader workers)
    #: or "consumer" (workers ship compact uint8 arrays and keypoints; the iterating process
    #: expands each batch with torch on ``device``; see ``vton_models.representation.base``).
    #: The batches are the same either way (pose heatmaps within float32 rounding).
    representation_on: str = "loader"
    device: str = "cpu"  # where "consumer" expansion runs and its tensors live

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ValueError(f"stream: batch_size must be >= 1, got {self.batch_size}")
        if len(self.image_size) != 2 or min(self.image_size) < 1:
            raise ValueError(f"stream: image_size must be (H, W) > 0, got {self.image_size}")
        if self.loader_workers < 0:
            raise ValueError(f"stream: loader_workers must be >= 0, got {self.loader_workers}")
        if self.shuffle_buffer < 1:
            raise ValueError(f"stream: shuffle_buffer must be >= 1, got {self.shuffle_buffer}")
        if not 0.0 <= self.max_bad_fraction < 1.0:
            raise ValueError(f"stream: max_bad_fraction must be in [0, 1), got {self.max_bad_fraction}")
        if self.batches_per_epoch is not None and self.batches_per_epoch < 1:
            raise ValueError(f"stream: batches_per_epoch must be >= 1, got {self.batches_per_epoch}")
        if self.prefetch_factor < 1:
            raise ValueError(f"stream: prefetch_factor must be >= 1, got {self.prefetch_factor}")
        AugmentConfig.from_options(self.augment_options)  # fail at configuration, not in a worker
        if self.representation_on not in REPRESENTATION_ON:
            raise ValueError(f"stream: representation_on must be one of {REPRESENTATION_ON}, "
                             f"got {self.representation_on!r}")
        if self.representation_on == "consumer":
            get_representation(self.representation).require_device_form()


@dataclass(frozen=True, order=True)
class StreamPosition:
    """Where a rank is: the next batch to yield is step ``step`` of epoch ``epoch``."""

    epoch: int = 0
    step: int = 0

    def advanced(self, batches: int, batches_per_epoch: int) -> "StreamPosition":
        """The position ``batches`` batches later (what a caller counting batches stores)."""
        flat = self.epoch * batches_per_epoch + self.step + batches
        return StreamPosition(flat // batches_per_epoch, flat % batches_per_epoch)


# ----------------------------------------------------------------------------------- the plan


@dataclass(frozen=True)
class SampleRange:
    """Samples ``[start, end)`` of shard ``shard`` (an index into the manifest's shard list)."""

    shard: int
    start: int
    end: int


@dataclass(frozen=True)
class Block:
    """A unit of fetching and shuffling: consecutive positions of one role's range."""

    epoch: int
    role: int
    index: int  # block number within the role's range
    ranges: tuple[SampleRange, ...]
    length: int


class EpochPlan:
    """Pure arithmetic over the manifest: which samples every (epoch, rank, role, step) gets."""

    def __init__(self, counts: Sequence[int], batch_size: int, world_size: int, workers: int,
                 shuffle_buffer: int, seed: int, batches_per_epoch: int | None = None) -> None:
        self.counts = list(counts)
        self.n = sum(self.counts)
        if self.n < 1:
            raise ValueError("stream: the manifest lists no samples")
        self.b, self.world, self.workers, self.seed = batch_size, world_size, max(1, workers), seed
        self.batches = batches_per_epoch or math.ceil(self.n / (world_size * batch_size))
        self.block_len = batch_size * math.ceil(shuffle_buffer / batch_size)

    def steps_of_role(self, role: int) -> int:
        return len(range(role, self.batches, self.workers))

    def shard_order(self, epoch: int) -> np.ndarray:
        return np.random.default_rng([self.seed, epoch, 0x5EED]).permutation(len(self.counts))

    def role_start(self, rank: int, role: int) -> int:
        """First epoch position of a role's range."""
        before = sum(self.steps_of_role(q) for q in range(role))
        return (rank * self.batches + before) * self.b

    def ranges(self, epoch: int, start: int, length: int) -> tuple[SampleRange, ...]:
        """Epoch positions ``[start, start+length)`` (cyclic) as per-shard sample ranges."""
        order = self.shard_order(epoch)
        seq_starts = np.concatenate([[0], np.cumsum([self.counts[s] for s in order])])
        out: list[SampleRange] = []
        pos, left = start % self.n, length
        while left > 0:
            i = int(np.searchsorted(seq_starts, pos, side="right") - 1)
            shard = int(order[i])
            first = pos - int(seq_starts[i])
            take = min(left, self.counts[shard] - first)
            if out and out[-1].shard == shard and out[-1].end == first:
                out[-1] = SampleRange(shard, out[-1].start, first + take)
            else:
                out.append(SampleRange(shard, first, first + take))
            left -= take
            pos = (pos + take) % self.n
        return tuple(out)

    def block(self, epoch: int, rank: int, role: int, index: int) -> Block:
        total = self.steps_of_role(role) * self.b
        start = index * self.block_len
        length = min(self.block_len, total - start)
        assert length > 0, (epoch, rank, role, index)
        return Block(epoch, role, index, self.ranges(epoch, self.role_start(rank, role) + start, length), length)

    def permutation(self, block: Block, rank: int) -> np.ndarray:
        return np.random.default_rng([self.seed, block.epoch, rank, block.role, block.index]).permutation(block.length)

    def locate(self, role: int, local_batch: int) -> tuple[int, int]:
        """(block index, first block position) of a role's ``local_batch``-th batch."""
        pos = local_batch * self.b
        return pos // self.block_len, pos % self.block_len

    def batch_samples(self, epoch: int, rank: int, step: int) -> list[tuple[int, int]]:
        """(shard index, sample index) of each sample of a batch, before bad-sample substitution.

        The same arithmetic the workers use, exposed so the partition can be checked without I/O.
        """
        role, m = step % self.workers, step // self.workers
        index, first = self.locate(role, m)
        block = self.block(epoch, rank, role, index)
        flat = [(r.shard, i) for r in block.ranges for i in range(r.start, r.end)]
        perm = self.permutation(block, rank)
        return [flat[int(perm[first + j])] for j in range(self.b)]


# -------------------------------------------------------------------------------- processing


@dataclass
class BadSampleStats:
    """Bad-sample accounting of one process (a loader worker or the main process)."""

    seen: int = 0
    bad: int = 0
    reasons: Counter = field(default_factory=Counter)
    last: deque = field(default_factory=lambda: deque(maxlen=5))

    def message(self, limit: float) -> str:
        reasons = ", ".join(f"{k}: {v}" for k, v in self.reasons.most_common())
        last = "; ".join(self.last)
        return (f"{self.bad} of {self.seen} samples read were bad ({self.bad / max(1, self.seen):.1%} > "
                f"max_bad_fraction {limit:.1%}); by reason: {reasons}; last bad: {last}. "
                "Run `vton shard verify` on the manifest to list every damaged sample.")


class SampleProcessor:
    """One sample's member bytes -> representation arrays: decode, augment, build.

    Shared with the benchmarks' loose-file baselines so that every P1 variant does exactly the
    same CPU work per sample and differs only in how bytes arrive.
    """

    def __init__(self, cfg: StreamConfig) -> None:
        self.cfg = cfg
        self.augmenter = Augmenter(cfg.image_size, cfg.augment, cfg.augment_options)
        representation = get_representation(cfg.representation)
        self._parts = representation.reads
        if cfg.representation_on == "consumer":
            self._build = lambda sample: representation.compact_sample(sample, **cfg.representation_options)
        else:
            self._build = lambda sample: representation(sample, **cfg.representation_options)

    def __call__(self, members: dict[str, bytes], key: str, seed: Sequence[int]) -> dict[str, np.ndarray]:
        sample = decode_sample(members, key, self._parts)
        sample = self.augmenter(sample, seed)
        return self._build(sample)


class _BlockData:
    """A fetched block: raw sample slices by block-order position, plus where each came from."""

    def __init__(self, block: Block, manifest: Manifest, store: ObjectStore) -> None:
        self.keys: list[str] = []
        self.shards: list[str] = []
        self.slices: list[bytes] = []
        for rng in block.ranges:
            rec: ShardRecord = manifest.shards[rng.shard]
            lo, hi = rec.offsets[rng.start], rec.offsets[rng.end]
            try:
                data = store.get_range(rec.name, lo, hi)
            except RangeNotSatisfiableError:
                data = b""  # the object is shorter than the manifest says: these samples are bad
            url = store.url_for(rec.name)
            for i in range(rng.start, rng.end):
                a, z = rec.offsets[i] - lo, rec.offsets[i + 1] - lo
                self.keys.append(rec.keys[i])
                self.shards.append(url)
                self.slices.append(data[a:z])


class _Worker:
    """Everything one process needs to turn blocks into batches."""

    def __init__(self, cfg: StreamConfig, manifest: Manifest, plan: EpochPlan, rank: int,
                 ring: BufferRing | None = None) -> None:
        self.cfg, self.manifest, self.plan, self.rank, self.ring = cfg, manifest, plan, rank, ring
        self.store = manifest.store()
        self.processor = SampleProcessor(cfg)
        self.stats = BadSampleStats()

    def _process(self, data: _BlockData, pos: int, seed: tuple[int, ...]) -> dict[str, np.ndarray]:
        key = data.keys[pos]
        members = parse_sample(data.slices[pos], data.shards[pos], key)
        if self.cfg.check_digests:
            damaged = damaged_members(members)
            if damaged:
                raise BadSampleError(key, "digest mismatch", f"{', '.join(damaged)} differ from the sha256 "
                                     "recorded at build time (flipped bytes that may still decode)")
        return self.processor(members, key, seed)

    def _slot(self, data: _BlockData, perm: np.ndarray, i: int, seed: tuple[int, ...],
              bad: set[int]) -> tuple[str, dict[str, np.ndarray]]:
        """The sample for block slot ``i``: ``perm[i]`` or, if bad, the next good one (cyclic);
        returns (key, arrays)."""
        self.stats.seen += 1
        for step in range(len(perm)):
            pos = int(perm[(i + step) % len(perm)])
            if pos in bad:
                continue
            try:
                return data.keys[pos], self._process(data, pos, seed)
            except (BadSampleError, CorruptSampleError) as exc:
                bad.add(pos)
                self._count_bad(data, pos, exc)
        raise TooManyBadSamplesError(f"every sample of a block of {len(perm)} is bad "
                                     f"(shards {sorted(set(data.shards))}); " + self.stats.message(self.cfg.max_bad_fraction))

    def _count_bad(self, data: _BlockData, pos: int, exc: Exception) -> None:
        reason = exc.reason if isinstance(exc, BadSampleError) else "damaged tar member"
        self.stats.bad += 1
        self.stats.reasons[reason] += 1
        self.stats.last.append(f"{data.shards[pos]} '{data.keys[pos]}' ({reason})")
        log.warning("skipping bad sample '%s' in %s: %s", data.keys[pos], data.shards[pos], exc)
        limit = self.cfg.max_bad_fraction
        if self.stats.bad > limit * max(self.stats.seen, self.manifest.num_samples):
            raise TooManyBadSamplesError(self.stats.message(limit))

    def batches(self, schedule: Iterator[tuple[int, int, int]]) -> Iterator[dict[str, Any]]:
        """Batches for ``(epoch, role, local_batch)`` in schedule order; fetches one block ahead."""
        b = self.cfg.batch_size
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="vton-shard-fetch") as pool:
            pending: dict[tuple[int, int, int], Future] = {}
            current_id: tuple[int, int, int] | None = None
            data: _BlockData | None = None
            perm: np.ndarray | None = None
            bad: set[int] = set()
            for epoch, role, m in schedule:
                index, first = self.plan.locate(role, m)
                block_id = (epoch, role, index)
                if block_id != current_id:
                    fut = pending.pop(block_id, None) or self._fetch(pool, block_id)
                    data = fut.result()
                    current_id, bad = block_id, set()
                    perm = self.plan.permutation(self.plan.block(epoch, self.rank, role, index), self.rank)
                    nxt = self._next_block(block_id)
                    if nxt is not None and nxt not in pending:
                        pending = {nxt: self._fetch(pool, nxt)}
                assert data is not None and perm is not None
                keys, samples, bad_before = [], [], self.stats.bad
                for j in range(b):
                    seed = (self.cfg.seed, epoch, self.rank, role, m, j)
                    key, arrays = self._slot(data, perm, first + j, seed, bad)
                    keys.append(key)
                    samples.append(arrays)
                yield collate(samples, keys, self.stats.bad - bad_before, self.ring)

    def _fetch(self, pool: ThreadPoolExecutor, block_id: tuple[int, int, int]) -> Future:
        epoch, role, index = block_id
        block = self.plan.block(epoch, self.rank, role, index)
        return pool.submit(_BlockData, block, self.manifest, self.store)

    def _next_block(self, block_id: tuple[int, int, int]) -> tuple[int, int, int] | None:
        epoch, role, index = block_id
        if (index + 1) * self.plan.block_len < self.plan.steps_of_role(role) * self.cfg.batch_size:
            return epoch, role, index + 1
        return None  # the next epoch's role for this worker is only known to the schedule


def worker_schedule(plan: EpochPlan, start: StreamPosition, worker: int) -> Iterator[tuple[int, int, int]]:
    """Endless ``(epoch, role, local_batch)`` of DataLoader worker ``worker`` from ``start`` on."""
    w, n_b = plan.workers, plan.batches
    epoch, t0 = start.epoch, -start.step  # t0 = stream index of step 0 of `epoch`
    while True:
        role = (worker - t0) % w
        first_step = start.step if epoch == start.epoch else 0
        k = role
        if k < first_step:
            k += -(-(first_step - k) // w) * w  # first step >= first_step with k = role (mod w)
        while k < n_b:
            yield epoch, role, (k - role) // w
            k += w
        epoch, t0 = epoch + 1, t0 + n_b


# ------------------------------------------------------------------------------------ public


class _ShardDataset(IterableDataset):
    def __init__(self, stream: "ShardStream", start: StreamPosition, ring: BufferRing | None) -> None:
        self.stream, self.start, self.ring = stream, start, ring

    def __iter__(self) -> Iterator[dict[str, Any]]:
        info = get_worker_info()
        worker = 0 if info is None else info.id
        if info is not None:
            tune_worker_memory()
        runner = _Worker(self.stream.cfg, self.stream.manifest, self.stream.plan, self.stream.rank, self.ring)
        self.stream._last_worker = runner
        yield from runner.batches(worker_schedule(self.stream.plan, self.start, worker))


class ShardStream:
    """The batches of one rank. ``iter_from(position)`` is an endless iterator across epochs."""

    def __init__(self, cfg: StreamConfig, rank: int = 0, world_size: int = 1, manifest: Manifest | None = None) -> None:
        if not 0 <= rank < world_size:
            raise ValueError(f"stream: rank {rank} outside world_size {world_size}")
        self.cfg, self.rank, self.world_size = cfg, rank, world_size
        self.manifest = manifest or Manifest.load(cfg.manifest_url)
        self.plan = EpochPlan([s.samples for s in self.manifest.shards], cfg.batch_size, world_size,
                              cfg.loader_workers, cfg.shuffle_buffer, cfg.seed, cfg.batches_per_epoch)
        self._last_worker: _Worker | None = None

    @property
    def batches_per_epoch(self) -> int:
        return self.plan.batches

    @property
    def bad_sample_stats(self) -> BadSampleStats | None:
        """Counters of the in-process iterator (``loader_workers=0``); workers log theirs."""
        return None if self._last_worker is None else self._last_worker.stats

    def iter_from(self, position: StreamPosition = StreamPosition(), expand: bool = True) -> Iterator[dict[str, Any]]:
        """Batches from ``position`` on, forever; stop by closing the iterator (or dropping it).

        Each batch: the representation's arrays as tensors with a leading batch dimension, plus
        ``__key__`` (sample keys) and ``__bad__`` (bad samples met, and skipped, filling it). With
        ``representation_on="consumer"`` the tensors are built here, on ``cfg.device``;
        ``expand=False`` yields the compact batches the loader workers ship instead (for a caller
        that expands them itself, and for benchmarks).
        """
        if not 0 <= position.step < self.batches_per_epoch or position.epoch < 0:
            raise ValueError(f"stream: position {position} outside an epoch of {self.batches_per_epoch} batches")
        batches = self._iterate(position)
        if self.cfg.representation_on == "consumer" and expand:
            return self._expanded(batches)
        return batches

    def _expanded(self, batches: Generator[dict[str, Any], None, None]) -> Iterator[dict[str, Any]]:
        """Compact batches -> the representation's tensors on ``cfg.device``.

        With ``reuse_buffers`` the output tensors are reused too (same contract: valid until the
        next batch is requested); otherwise every batch gets its own.
        """
        representation = get_representation(self.cfg.representation)
        out: dict[str, Any] | None = {} if self.cfg.reuse_buffers else None
        try:
            for batch in batches:
                tensors = representation.expand_batch(batch, device=self.cfg.device, out=out)
                yield {**tensors, **{k: v for k, v in batch.items() if k.startswith("__")}}
        finally:
            batches.close()  # stops the loader workers now, as closing an unexpanded stream does

    def _iterate(self, position: StreamPosition) -> Iterator[dict[str, Any]]:
        workers = self.cfg.loader_workers
        ring = BufferRing(workers, self.cfg.prefetch_factor + 2 if workers else 2) if self.cfg.reuse_buffers else None
        dataset = _ShardDataset(self, position, ring)
        if workers == 0:
            yield from handing_back(iter(dataset), ring)
            return
        loader = DataLoader(dataset, batch_size=None, num_workers=workers, prefetch_factor=self.cfg.prefetch_factor,
                            persistent_workers=False, in_order=True, collate_fn=_identity)
        it = iter(loader)
        try:
            yield from handing_back(it, ring)
        finally:
            it._shutdown_workers()  # noqa: SLF001 - stop the worker processes now, not at GC


def _identity(batch: dict[str, Any]) -> dict[str, Any]:
    return batch
