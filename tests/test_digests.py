"""Per-member digests (shards.digests): a flipped byte inside a JPEG that still decodes is caught by
the stream (a bad sample, not trained on) and named by `vton shard verify` down to sample and member."""

from __future__ import annotations

import tarfile

import pytest

from shards.decode import decode_sample
from shards.digests import DIGEST_MEMBER, damaged_members
from shards.manifest import Manifest
from shards.stream import ShardStream, StreamConfig, StreamPosition
from shards.synthetic import synthesize
from shards.tario import parse_sample
from shards.writer import build_shards, verify_shards
from stream_checks import take


@pytest.fixture(scope="module")
def flipped(tmp_path_factory) -> tuple[str, str]:
    """(manifest URL, key of the sample whose person.jpg has one flipped bit that still decodes)."""
    root = tmp_path_factory.mktemp("digests")
    synthesize(root / "data", n=12, size=(64, 48), seed=3)  # 9 train samples
    manifest = build_shards("viton_hd", root / "data", "train", f"file://{root}/shards", workers=1)
    shard = root / "shards" / manifest.shards[0].name
    victim = manifest.shards[0].keys[4]
    with tarfile.open(shard) as tar:
        info = tar.getmember(f"{victim}.person.jpg")
    data = bytearray(shard.read_bytes())
    at = info.offset_data + info.size // 2
    while data[at] in (0xFF, 0xFE):  # not a marker byte, nor one that would become one
        at += 1
    data[at] ^= 0x01
    shard.write_bytes(bytes(data))
    # The damage is silent without digests: the member still decodes, to a slightly different image.
    rec = manifest.shards[0]
    lo, hi = rec.offsets[4], rec.offsets[5]
    members = parse_sample(bytes(data[lo:hi]), str(shard), victim)
    decode_sample(members, victim)
    assert damaged_members(members) == ["person.jpg"]
    return manifest.build_stats.manifest_url, victim


def test_every_sample_carries_the_digests_of_its_members(flipped):
    manifest = Manifest.load(flipped[0])
    assert manifest.members[DIGEST_MEMBER] == manifest.num_samples


def test_the_stream_skips_a_sample_whose_bytes_differ_from_its_digest(flipped):
    url, victim = flipped
    cfg = dict(batch_size=3, image_size=(64, 48), loader_workers=0, shuffle_buffer=3, augment=False,
               max_bad_fraction=0.5)
    stream = ShardStream(StreamConfig(url, **cfg))
    keys = [k for b in take(stream.iter_from(StreamPosition()), stream.batches_per_epoch) for k in b["__key__"]]
    assert victim not in keys and stream.bad_sample_stats.reasons == {"digest mismatch": 1}

    unchecked = ShardStream(StreamConfig(url, check_digests=False, **cfg))  # what happened before
    keys = [k for b in take(unchecked.iter_from(StreamPosition()), unchecked.batches_per_epoch) for k in b["__key__"]]
    assert victim in keys


def test_verify_names_the_sample_and_the_member(flipped):
    url, victim = flipped
    report = verify_shards(url)
    named = [f for f in report.failures if f.key == victim]
    assert len(named) == 1 and "member(s) person.jpg: sha256 differs" in named[0].problem, report.summary()
    assert any(f.key is None and "sha256 differs from the manifest" in f.problem for f in report.failures)


def test_digest_sizes_are_planned_exactly(tmp_path):
    """The writer plans shard sizes before reading any file: its planned size of every sample, the
    digest member included, must be the size the tar gives it."""
    from shards.layouts import read_layout
    from shards.writer import plan_sample

    synthesize(tmp_path / "data", n=4, size=(64, 48), seed=1)
    manifest = build_shards("viton_hd", tmp_path / "data", "train", f"file://{tmp_path}/shards", workers=1)
    rec = manifest.shards[0]
    planned = {s.key: plan_sample(s).tar_bytes for s in read_layout("viton_hd", tmp_path / "data", "train")}
    assert [planned[k] for k in rec.keys] == [b - a for a, b in zip(rec.offsets, rec.offsets[1:])]
    shard = (tmp_path / "shards" / rec.name).read_bytes()
    for i, key in enumerate(rec.keys):
        members = parse_sample(shard[rec.offsets[i]:rec.offsets[i + 1]], rec.name, key)
        assert DIGEST_MEMBER in members and damaged_members(members) == []
    assert verify_shards(manifest.build_stats.manifest_url).ok
