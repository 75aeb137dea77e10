"""synthetic dataset -> build_shards -> verify_shards -> stream, against the real S3 server."""

from __future__ import annotations

import io
import json
import logging
import tarfile
from pathlib import Path

import pytest
import torch
import webdataset as wds

from shards.layouts import read_layout
from shards.manifest import SCHEMA_VERSION, Manifest, ManifestError
from shards.sample import MissingModalityError
from shards.store import StoreError, open_store
from shards.stream import ShardStream, StreamConfig
from shards.synthetic import synthesize
from shards.sample import SampleSource
from shards.writer import build_shards, parse_size, plan_sample, serialise_meta, verify_shards, write_tar
from stream_checks import as_built, assert_streams_sources, one_epoch

SIZE = (64, 48)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("synth")
    synthesize(root, n=24, size=SIZE, seed=3)  # 18 train, 6 test
    return root


def _expected_members(dataset: Path, split: str = "train") -> dict[str, dict[str, bytes]]:
    """What every sample must hold: the source files' bytes, unchanged, plus meta.json and digests."""
    out = {}
    for s in read_layout("viton_hd", dataset, split):
        members = {m: Path(p).read_bytes() for m, p in s.paths.items()}
        members["meta.json"] = serialise_meta(s.meta)
        out[s.key] = as_built(members)
    return out


def _tar_samples(store, manifest: Manifest) -> dict[str, dict[str, bytes]]:
    """Every sample of every shard, read with plain webdataset over the store's URLs."""
    urls = [manifest.shard_url(s) for s in manifest.shards]
    samples = {}
    for sample in wds.WebDataset(urls, shardshuffle=False):
        key = sample.pop("__key__")
        sample.pop("__url__")
        sample.pop("__local_path__", None)
        samples[key] = sample
    return samples


def test_build_verify_stream_roundtrip_on_s3(dataset, s3_prefix):
    expected = _expected_members(dataset)
    manifest = build_shards("viton_hd", dataset, "train", s3_prefix + "/", shard_size_bytes="40KB", workers=2)
    stats = manifest.build_stats
    assert manifest.totals["samples"] == 18 and len(manifest.shards) >= 3, manifest.totals
    assert (stats.uploaded, stats.skipped, stats.manifest_written) == (len(manifest.shards), 0, True)
    assert [k for s in manifest.shards for k in s.keys] == list(expected)  # layout order kept
    for rec in manifest.shards:
        assert rec.name.startswith("train-") and rec.sha256[:12] in rec.name
        assert rec.bytes <= 40_000 + 10_240 or rec.samples == 1  # limit + tar end-of-archive record

    # The objects in the store are what the manifest lists.
    store = open_store(s3_prefix)
    assert sorted(store.list()) == sorted([s.name for s in manifest.shards] + ["manifest.json"])
    loaded = Manifest.load(s3_prefix + "/manifest.json")
    assert loaded.same_content(manifest) and Manifest.load(s3_prefix).same_content(manifest)

    # Byte-identical members, read back through webdataset's s3:// handler.
    assert _tar_samples(store, loaded) == expected

    report = verify_shards(s3_prefix + "/manifest.json")
    assert report.ok, report.summary()
    assert (report.shards, report.samples, report.bytes) == (len(manifest.shards), 18, manifest.num_bytes)

    # The stream yields every sample once per epoch; without augmentation its person tensor is
    # exactly the decoded source JPEG in network range.
    cfg = StreamConfig(s3_prefix, batch_size=3, image_size=SIZE, loader_workers=0, augment=False,
                       shuffle_buffer=4)
    stream = ShardStream(cfg)
    assert stream.batches_per_epoch == 6
    inputs = one_epoch(stream, "inputs")
    assert all(x.shape == (41, *SIZE) and x.dtype == torch.float32 for x in inputs.values())
    assert_streams_sources(stream, "person", expected, "person.jpg")


def test_rerun_is_idempotent_and_deterministic(dataset, s3_prefix, stack):
    first = build_shards("viton_hd", dataset, "train", s3_prefix, shard_size_bytes="40KB", workers=2)
    store = open_store(s3_prefix)
    before = {k: store.stat(k) for k in store.list()}
    manifest_bytes = store.get_bytes("manifest.json")

    again = build_shards("viton_hd", dataset, "train", s3_prefix, shard_size_bytes="40KB", workers=1)
    stats = again.build_stats
    assert (stats.uploaded, stats.skipped, stats.bytes_uploaded) == (0, len(first.shards), 0)
    assert stats.manifest_written is False
    assert store.get_bytes("manifest.json") == manifest_bytes  # not even the manifest was rewritten
    assert {k: store.stat(k) for k in store.list()} == before
    assert again.shards == first.shards  # same tar bytes, whatever the worker count

    # A lost shard is the only one uploaded again.
    lost = first.shards[1].name
    store.delete(lost)
    third = build_shards("viton_hd", dataset, "train", s3_prefix, shard_size_bytes="40KB", workers=2)
    assert (third.build_stats.uploaded, third.build_stats.skipped) == (1, len(first.shards) - 1)
    assert store.exists(lost) and third.shards == first.shards

    # A different shard size rewrites the manifest; the old shards stay (named as stale) and the
    # old manifest's objects were never overwritten.
    bigger = build_shards("viton_hd", dataset, "train", s3_prefix, shard_size_bytes="1MB", workers=2)
    assert len(bigger.shards) == 1 and bigger.build_stats.manifest_written
    assert bigger.build_stats.stale == sorted(s.name for s in first.shards)
    assert all(store.stat(s.name).sha256 == s.sha256 for s in first.shards)
    assert verify_shards(s3_prefix).ok


def test_file_destination_matches_s3_bytes(dataset, s3_prefix, tmp_path):
    on_s3 = build_shards("viton_hd", dataset, "test", s3_prefix, shard_size_bytes="1MiB", workers=1)
    local_dir = tmp_path / "shards"
    local = build_shards("viton_hd", dataset, "test", local_dir.as_uri(), shard_size_bytes="1MiB", workers=1)
    assert [(s.name, s.sha256, s.bytes) for s in local.shards] == [(s.name, s.sha256, s.bytes) for s in on_s3.shards]
    for rec in local.shards:
        assert (local_dir / rec.name).read_bytes() == open_store(s3_prefix).get_bytes(rec.name)
    report = verify_shards(str(local_dir))  # a plain path works too
    assert report.ok and report.samples == 6
    # test-split samples carry the unpaired cloth for evaluation in their meta.json
    meta = json.loads(_tar_samples(open_store(local_dir), Manifest.load(str(local_dir)))
                      [local.shards[0].keys[0]]["meta.json"])
    assert meta["split"] == "test" and meta["unpaired_cloth_key"] in local.shards[0].keys
    again = build_shards("viton_hd", dataset, "test", str(local_dir), shard_size_bytes="1MiB", workers=1)
    assert again.build_stats.uploaded == 0 and again.build_stats.manifest_written is False


def test_tar_members_are_reproducible(dataset, tmp_path):
    m = build_shards("viton_hd", dataset, "test", tmp_path, shard_size_bytes="1MB", workers=1)
    with tarfile.open(tmp_path / m.shards[0].name) as tar:
        infos = tar.getmembers()
    assert {(i.mtime, i.uid, i.gid, i.uname, i.gname, i.mode) for i in infos} == {(0, 0, 0, "bigdata", "bigdata", 0o444)}
    first = m.shards[0].keys[0]
    assert sorted(i.name for i in infos if i.name.startswith(first + ".")) == sorted(
        f"{first}.{m}" for m in ("person.jpg", "cloth.jpg", "cloth_mask.png", "parse.png", "pose.json",
                                 "meta.json", "agnostic.jpg", "parse_agnostic.png", "pose_img.png", "sha256.json"))


def test_verify_names_damaged_shard_and_sample(dataset, s3_prefix):
    manifest = build_shards("viton_hd", dataset, "train", s3_prefix, shard_size_bytes="60KB", workers=1)
    store = open_store(s3_prefix)
    rec = manifest.shards[0]
    assert rec.samples >= 2, rec  # the victim is not the shard's first sample
    victim = rec.keys[1]
    data = bytearray(store.get_bytes(rec.name))
    with tarfile.open(fileobj=io.BytesIO(bytes(data))) as tar:
        info = tar.getmember(f"{victim}.person.jpg")
    data[info.offset_data: info.offset_data + info.size] = b"\x00" * info.size  # same size, not a JPEG
    store.put_bytes(rec.name, bytes(data))
    report = verify_shards(s3_prefix)
    assert not report.ok
    problems = {(f.shard, f.key): f.problem for f in report.failures}
    assert "bad image" in problems[(rec.name, victim)] and "person.jpg" in problems[(rec.name, victim)]
    assert "sha256 differs" in problems[(rec.name, None)]
    assert victim in report.summary() and rec.name in report.summary()

    # A truncated object (cut inside its last sample's first member): named as damaged and of
    # the wrong size; the samples before the cut and the other shards are still verified.
    cut = rec.offsets[-2] + 700
    store.put_bytes(rec.name, bytes(data[:cut]))
    report = verify_shards(s3_prefix)
    messages = " | ".join(str(f) for f in report.failures)
    assert f"{rec.name} [{rec.keys[-1]}]: " in messages and "damaged tar stream" in messages, messages
    assert f"size {cut} bytes, manifest says {rec.bytes}" in messages
    assert report.samples == manifest.num_samples - 1


def test_missing_modality_strict_and_lenient(tmp_path, s3_prefix, caplog):
    root = tmp_path / "ds"
    synthesize(root, n=8, size=SIZE, seed=1)
    victim = sorted((root / "train" / "image-parse-v3").iterdir())[2]
    victim.unlink()
    with pytest.raises(MissingModalityError, match=victim.stem):
        build_shards("viton_hd", root, "train", s3_prefix, workers=1)
    assert not open_store(s3_prefix).list()  # nothing written before the failure was known
    with caplog.at_level(logging.WARNING):
        m = build_shards("viton_hd", root, "train", s3_prefix, workers=1, strict=False)
    assert m.totals["samples"] == 5 and m.build_stats.skipped_sources == 1
    assert victim.stem not in [k for s in m.shards for k in s.keys]


def test_bad_destinations_and_options(dataset, stack, tmp_path):
    with pytest.raises(StoreError, match="bucket 'vton-missing-bucket' does not exist"):
        build_shards("viton_hd", dataset, "train", "s3://vton-missing-bucket/x", workers=1)
    with pytest.raises(ValueError, match="invalid size '12 parsecs'"):
        build_shards("viton_hd", dataset, "train", str(tmp_path), shard_size_bytes="12 parsecs")
    with pytest.raises(ValueError, match="unknown dataset layout 'zalando'"):
        build_shards("zalando", dataset, "train", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="does-not-exist"):
        build_shards("viton_hd", tmp_path / "does-not-exist", "train", str(tmp_path))
    with pytest.raises(ValueError, match="invalid split"):
        build_shards("viton_hd", dataset, "../train", str(tmp_path))


def test_planned_sizes_are_exact_tar_sizes(dataset, tmp_path):
    """Shards are assigned from planned sizes before any tar exists; they must be the real ones,
    including for keys long enough to need a pax header."""
    m = build_shards("viton_hd", dataset, "test", tmp_path / "a", shard_size_bytes="1MB", workers=1)
    planned = [plan_sample(s).tar_bytes for s in read_layout("viton_hd", dataset, "test")]
    offsets = m.shards[0].offsets
    assert planned == [b - a for a, b in zip(offsets, offsets[1:])]
    f = tmp_path / "x.bin"
    f.write_bytes(b"z" * 1000)
    long_key = "k" * 120
    src = SampleSource(key=long_key, paths={"person.jpg": f}, meta={"a": "é"})
    buf = io.BytesIO()
    members = as_built({"person.jpg": f.read_bytes(), "meta.json": serialise_meta(src.meta)})
    _, _, _, offs = write_tar([(long_key, members)], buf)
    assert plan_sample(src).tar_bytes == offs[1] - offs[0] > 2 * 1536
    with pytest.raises(ValueError, match="cannot name tar members"):
        plan_sample(SampleSource(key="a.b", paths={}, meta={}))


def test_parse_size():
    assert parse_size("256MB") == 256_000_000
    assert parse_size("1GiB") == 2**30
    assert parse_size("1.5 KiB") == 1536
    assert parse_size(4096) == 4096
    assert parse_size("10kb") == 10_000
    for bad in ("", "MB", "-1MB", "0", "3 bananas"):
        with pytest.raises(ValueError, match="invalid size"):
            parse_size(bad)


def test_manifest_validation_names_the_problem(dataset, tmp_path):
    m = build_shards("viton_hd", dataset, "test", tmp_path, shard_size_bytes="1MB", workers=1)
    doc = json.loads((tmp_path / "manifest.json").read_text())
    assert doc["schema_version"] == SCHEMA_VERSION and doc["totals"] == m.totals
    roundtrip = Manifest.from_json(m.to_json())
    assert roundtrip.same_content(m) and roundtrip.created == m.created

    def broken(mutate) -> str:
        d = json.loads(json.dumps(doc))
        mutate(d)
        with pytest.raises(ManifestError) as err:
            Manifest.from_dict(d, "here.json")
        return str(err.value)

    assert "unknown schema_version 99" in broken(lambda d: d.update(schema_version=99))
    assert "missing field 'layout'" in broken(lambda d: d.pop("layout"))
    assert "missing field 'sha256'" in broken(lambda d: d["shards"][0].pop("sha256"))
    assert m.shards[0].name in broken(lambda d: d["shards"][0].update(samples=99))
    assert "totals.samples" in broken(lambda d: d["totals"].update(samples=1))
    assert "plain '*.tar'" in broken(lambda d: d["shards"][0].update(name="../x.tar"))
    assert "offsets" in broken(lambda d: d["shards"][0]["offsets"].reverse())
    with pytest.raises(ManifestError, match="not valid JSON"):
        Manifest.from_json("{", "x.json")
    with pytest.raises(ManifestError, match="no manifest there"):
        Manifest.load(str(tmp_path / "elsewhere"))


def test_shards_written_before_schema_2_still_verify_and_stream(dataset, tmp_path):
    """A set as the previous writer left it: no rendered pose member, no digests, a version-1
    manifest without ``members``. It still loads, verifies and streams (``members`` is then unknown)."""
    old_style = tmp_path / "v1"
    build_shards("viton_hd", dataset, "test", old_style, shard_size_bytes="1MB", workers=1)
    samples = []
    for record in Manifest.load(str(old_style)).shards:
        with tarfile.open(old_style / record.name) as tar:
            members: dict[str, dict[str, bytes]] = {}
            for info in tar.getmembers():
                key, _, member = info.name.partition(".")
                if member not in ("pose_img.png", "sha256.json"):
                    members.setdefault(key, {})[member] = tar.extractfile(info).read()
        samples += list(members.items())
    for path in old_style.iterdir():
        path.unlink()
    store = open_store(str(old_style))
    buf = io.BytesIO()
    sha, size, keys, offsets = write_tar(samples, buf)
    store.put_bytes(f"test-000000-{sha[:12]}.tar", buf.getvalue())
    doc = {"schema_version": 1, "layout": "viton_hd", "split": "test", "created": "2026-11-01T00:00:00+00:00",
           "source": {}, "shards": [{"name": f"test-000000-{sha[:12]}.tar", "samples": len(keys), "bytes": size,
                                     "sha256": sha, "keys": keys, "offsets": offsets}]}
    store.put_bytes("manifest.json", json.dumps(doc).encode())

    loaded = Manifest.load(str(old_style))
    assert loaded.schema_version == 1 and loaded.members is None and loaded.num_samples == 6
    assert verify_shards(str(old_style)).ok
    stream = ShardStream(StreamConfig(str(old_style), batch_size=2, image_size=SIZE, loader_workers=0,
                                      augment=False, shuffle_buffer=2, representation="viton_hd"))
    assert len(one_epoch(stream, "pose_img")) == 6  # drawn, since these shards carry no rendered pose
