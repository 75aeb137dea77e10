"""Per-sample arrays -> batch tensors, and the memory tricks that make that cheap in loader workers.

Why this is its own module: at 512x384 one unet_sa sample is ~40 MB of float32, so moving batches
from loader workers to the training process is dominated by *fresh memory*, not by copying. On a
VM, first-touching a page costs microseconds, so a new shared-memory batch per step costs an
order of magnitude more than the copy into it (measured here: ~260 ms vs ~22 ms for 160 MB).
Two remedies, both measured in bench/p1_stream.py:

* ``tune_worker_memory()`` (every loader worker): glibc serves large allocations (above a threshold
  that starts at 128 KiB and adapts up to 32 MiB) with fresh ``mmap``s and unmaps them on free, so
  representation arrays keep page-faulting anew. Pinning the mmap threshold at its 32 MiB maximum
  and raising the trim threshold keeps freed arrays in the heap for the next sample.
* ``BufferRing`` (opt-in, ``StreamConfig.reuse_buffers``): each worker writes batches into a few
  shared-memory buffers it allocated once, and the main process hands a buffer back when the next
  batch is requested. The price is the contract: *a batch is valid until the next one is
  requested* (``.clone()`` what you keep longer). The ring has ``prefetch_factor + 2`` slots per
  worker: torch's DataLoader has at most ``prefetch_factor`` batches of a worker in flight, the
  caller holds one, and one is spare, so a worker never waits on a buffer still legitimately in use.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import time
from typing import Any, Iterator

import numpy as np
import torch
from torch.utils.data import get_worker_info

_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_MMAP_THRESHOLD_MAX = 32 << 20  # glibc's ceiling for M_MMAP_THRESHOLD on 64-bit
_TRIM_THRESHOLD = 1 << 30
_tuned = False


def tune_worker_memory() -> bool:
    """Keep freed large arrays in this process's heap (glibc only; a no-op elsewhere).

    Call it in loader worker processes, not in the training process: it trades resident memory
    (up to the per-sample peak, a few hundred MB) for not page-faulting every array again.
    """
    global _tuned
    if _tuned:
        return True
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    _tuned = bool(mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD_MAX)) and bool(mallopt(_M_TRIM_THRESHOLD, _TRIM_THRESHOLD))
    return _tuned


class BufferRing:
    """Batch buffers reused across steps; the flags live in shared memory (see module docstring).

    Create it in the main process before the DataLoader starts its workers; workers inherit it.
    """

    def __init__(self, workers: int, slots: int) -> None:
        self.flags = torch.zeros((max(1, workers), slots), dtype=torch.int32)
        if workers > 0:
            self.flags.share_memory_()
        self._buffers: dict[tuple[int, int], dict[str, torch.Tensor]] = {}  # per process

    def acquire(self, worker: int, timeout_s: float = 600.0) -> int:
        row = self.flags[worker]
        deadline = time.monotonic() + timeout_s
        while True:
            free = (row == 0).nonzero()
            if len(free):
                slot = int(free[0])
                row[slot] = 1
                return slot
            if time.monotonic() > deadline:
                raise RuntimeError(f"loader worker {worker}: no batch buffer was handed back in {timeout_s:.0f}s; "
                                   "with reuse_buffers=True the caller must keep requesting batches")
            time.sleep(0.0005)

    def buffer(self, worker: int, slot: int, name: str, like: torch.Tensor, shape: tuple[int, ...],
               shared: bool) -> torch.Tensor:
        bufs = self._buffers.setdefault((worker, slot), {})
        out = bufs.get(name)
        if out is None or tuple(out.shape) != shape or out.dtype != like.dtype:
            out = _empty(like, shape, shared)
            bufs[name] = out
        return out

    def release(self, batch: dict[str, Any]) -> None:
        slot = batch.get("__slot__")
        if slot is not None:
            self.flags[int(slot[0]), int(slot[1])] = 0


def _empty(like: torch.Tensor, shape: tuple[int, ...], shared: bool) -> torch.Tensor:
    if not shared:
        return torch.empty(shape, dtype=like.dtype)
    # Straight into shared memory (as torch's default_collate does in workers): one copy per
    # array, and the main process maps the result instead of receiving a pickle.
    numel = int(np.prod(shape))
    storage = like._typed_storage()._new_shared(numel)
    return like.new(storage).resize_(shape)


def collate(samples: list[dict[str, np.ndarray]], keys: list[str], bad: int = 0,
            ring: BufferRing | None = None) -> dict[str, Any]:
    """Stack per-sample arrays into batch tensors (``__key__``: sample keys, ``__bad__``: how many
    bad samples were met, and skipped, filling this batch, ``__slot__``: the ring buffer used, if any)."""
    info = get_worker_info()
    shared = info is not None
    worker = 0 if info is None else info.id
    slot = ring.acquire(worker) if ring is not None else None
    batch: dict[str, Any] = {}
    for name, first in samples[0].items():
        like = torch.from_numpy(np.ascontiguousarray(first))
        shape = (len(samples),) + tuple(like.shape)
        if ring is not None:
            out = ring.buffer(worker, slot, name, like, shape, shared)
        else:
            out = _empty(like, shape, shared)
        for i, s in enumerate(samples):
            out[i].copy_(torch.from_numpy(np.ascontiguousarray(s[name])))
        batch[name] = out
    batch["__key__"] = keys
    batch["__bad__"] = torch.tensor(bad, dtype=torch.int64)
    if slot is not None:
        batch["__slot__"] = torch.tensor([worker, slot], dtype=torch.int64)
    return batch


def handing_back(batches: Iterator[dict[str, Any]], ring: BufferRing | None) -> Iterator[dict[str, Any]]:
    """Yield ``batches``; hand each one's ring buffer back when the caller asks for the next."""
    if ring is None:
        yield from batches
        return
    for batch in batches:
        yield batch
        ring.release(batch)
