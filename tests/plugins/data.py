"""Small synthetic shard sets on local disk, shared by the in-process training tests."""

from __future__ import annotations

from pathlib import Path

import pytest


def local_shards(root: Path, n: int, size: tuple[int, int], seed: int, layout: str = "viton_hd",
                 synthetic: str | None = None) -> Path:
    """A synthetic set under ``root/data`` (drawn as ``synthetic``, default ``layout``; "mpv" for
    ``mpv_triplets``), read as ``layout`` and sharded to ``root/shards/{train,test}`` (file://)."""
    from shards.synthetic import synthesize_layout
    from shards.writer import build_shards

    synthesize_layout(synthetic or layout, root / "data", n=n, size=size, seed=seed)
    for split in ("train", "test"):
        build_shards(layout, root / "data", split, f"file://{root}/shards/{split}", workers=1)
    return root


def shard_to_s3(data: Path, layout: str, bucket: str, tag: str) -> str:
    """The train and test splits of a dataset on disk, sharded to a fresh ``s3://bucket/tests/<tag>-<id>/``."""
    import uuid

    from shards.writer import build_shards

    prefix = f"s3://{bucket}/tests/{tag}-{uuid.uuid4().hex[:8]}"
    for split in ("train", "test"):
        build_shards(layout, data, split, f"{prefix}/{split}", workers=1)
    return prefix


def s3_shards(root: Path, bucket: str, tag: str, n: int, seed: int) -> str:
    """A synthetic VITON-HD set sharded to a fresh ``s3://bucket/tests/<tag>-<id>/{train,test}``."""
    from shards.synthetic import synthesize

    synthesize(root / "data", n=n, size=(64, 48), seed=seed)
    return shard_to_s3(root / "data", "viton_hd", bucket, tag)


def decoded_samples(root: Path, layout: str = "viton_hd", split: str = "train") -> list:
    """Every sample of a layout's split, decoded as the stream would (no shards written)."""
    from shards.decode import decode_sample
    from shards.layouts import read_layout
    from shards.writer import serialise_meta

    out = []
    for s in read_layout(layout, root, split):
        members = {m: Path(p).read_bytes() for m, p in s.paths.items()}
        members["meta.json"] = serialise_meta(s.meta)
        out.append(decode_sample(members, s.key))
    return out


@pytest.fixture(scope="session")
def mpv_shards(tmp_path_factory) -> Path:
    """Synthetic MPV triplets at 64x64 (``mpv_triplets``; the parse U-Nets need multiples of 64),
    shared by the multi-pose families' tests: ``root/data`` and ``root/shards/{train,test}``."""
    return local_shards(tmp_path_factory.mktemp("mpv"), 24, (64, 64), 8, layout="mpv_triplets", synthetic="mpv")
