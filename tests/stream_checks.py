"""Checks several shard tests share: what one epoch of a stream yields per key, the network-range
tensor of a source JPEG, exact resume at several positions, and hand-made (corruptible) shards."""

from __future__ import annotations

import io
import itertools
from pathlib import Path
from typing import Iterable

import cv2
import numpy as np
import torch

from shards.layouts import read_layout
from shards.manifest import Manifest, ShardRecord
from shards.store import open_store
from shards.stream import ShardStream, StreamPosition
from shards.writer import serialise_meta, shard_name, write_tar


def network_rgb(jpeg: bytes) -> torch.Tensor:
    """(3, H, W) float32 in [-1, 1]: what an un-augmented stream yields for this JPEG."""
    bgr = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    return torch.from_numpy(bgr[:, :, ::-1].transpose(2, 0, 1).astype(np.float32) / 127.5 - 1.0)


def one_epoch(stream: ShardStream, field: str) -> dict[str, torch.Tensor]:
    """Key -> ``batch[field][i]`` over one epoch from the start (a key seen twice keeps the last)."""
    it = stream.iter_from(StreamPosition())
    seen = {}
    try:
        for _ in range(stream.batches_per_epoch):
            batch = next(it)
            for i, key in enumerate(batch["__key__"]):
                seen[key] = batch[field][i]
    finally:
        it.close()
    return seen


def assert_streams_sources(stream: ShardStream, field: str, sources: dict[str, dict[str, bytes]], member: str) -> None:
    """Every source sample streamed once per epoch, ``field`` exactly its ``member`` JPEG."""
    seen = one_epoch(stream, field)
    assert sorted(seen) == sorted(sources)
    for key, tensor in seen.items():
        assert torch.equal(tensor, network_rgb(sources[key][member])), key


def take(it, n: int) -> list[dict]:
    out = [next(it) for _ in range(n)]
    it.close()
    return out


def same_batch(a: dict, b: dict) -> bool:
    return a["__key__"] == b["__key__"] and all(torch.equal(a[k], b[k]) for k in a if isinstance(a[k], torch.Tensor))


def assert_exact_resume(stream: ShardStream, positions: Iterable[StreamPosition], extra: int = 3) -> None:
    """Starting at each position gives exactly the batches an uninterrupted run gives from there
    (through the epoch boundary, ``extra`` batches into the next epoch)."""
    n_b = stream.batches_per_epoch
    reference = take(stream.iter_from(StreamPosition()), n_b + extra)
    for pos in positions:
        flat = pos.epoch * n_b + pos.step
        resumed = take(stream.iter_from(pos), n_b + extra - flat)
        assert all(same_batch(a, b) for a, b in zip(resumed, reference[flat:], strict=True)), pos


def record_block_fetches(monkeypatch) -> list[tuple[int, int, int]]:
    """(epoch, role, index) of every block the streams fetch from now on, in order."""
    from shards import stream as stream_mod

    fetched: list[tuple[int, int, int]] = []

    class Recording(stream_mod._BlockData):
        def __init__(self, block, manifest, store):
            fetched.append((block.epoch, block.role, block.index))
            super().__init__(block, manifest, store)

    monkeypatch.setattr(stream_mod, "_BlockData", Recording)
    return fetched


def source_samples(dataset: Path, n: int) -> list[tuple[str, dict[str, bytes]]]:
    """The first ``n`` train samples of a ``viton_hd`` dataset on disk as tar members, to corrupt."""
    out = []
    for s in itertools.islice(read_layout("viton_hd", dataset, "train"), n):
        members = {m: Path(p).read_bytes() for m, p in s.paths.items()}
        members["meta.json"] = serialise_meta(s.meta)
        out.append((s.key, members))
    return out


def publish_shards(url: str, shards: list[list[tuple[str, dict[str, bytes]]]], cut: dict[int, int] | None = None) -> Manifest:
    """Write hand-made shards + manifest (``cut``: shard index -> bytes to keep of the object)."""
    store = open_store(url)
    records = []
    for i, samples in enumerate(shards):
        buf = io.BytesIO()
        sha, size, keys, offsets = write_tar(samples, buf)
        name = shard_name("train", i, sha)
        data = buf.getvalue()
        store.put_bytes(name, data[: (cut or {}).get(i, len(data))])
        records.append(ShardRecord(name, len(keys), size, sha, tuple(keys), tuple(offsets)))
    manifest = Manifest(layout="viton_hd", split="train", shards=records)
    manifest.save(store)
    return manifest


def as_built(members: dict[str, bytes]) -> dict[str, bytes]:
    """A sample's members as `vton shard build` writes them: its source files' bytes and meta.json
    unchanged, plus the digest member (``shards.digests``)."""
    from shards.digests import DIGEST_MEMBER, digest_member

    return {**members, DIGEST_MEMBER: digest_member(members)}
