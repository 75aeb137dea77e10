"""shards.stream against the real S3 server: partition, equal batches, resume, corrupt input."""

from __future__ import annotations

import hashlib
import io
import itertools
import json
import logging
import tarfile
import uuid
from collections import Counter
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from shards.manifest import Manifest, ShardRecord
from shards.store import open_store
from shards.stream import EpochPlan, ShardStream, StreamConfig, StreamPosition, TooManyBadSamplesError, worker_schedule
from shards.synthetic import synthesize
from shards.tario import UnsafeMemberError
from shards.writer import build_shards, serialise_meta, shard_name, verify_shards
from stream_checks import assert_exact_resume, publish_shards, record_block_fetches, source_samples, take

SIZE = (64, 48)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("synth")
    synthesize(root, n=32, size=SIZE, seed=5)  # 24 train samples
    return root


@pytest.fixture(scope="module")
def shards_url(dataset, stack):
    """24 samples in uneven shards (the last one is smaller) on the S3 server."""
    url = f"s3://{stack.bucket}/tests/{uuid.uuid4().hex[:12]}"
    m = build_shards("viton_hd", dataset, "train", url, shard_size_bytes="110KB", workers=2)
    counts = [s.samples for s in m.shards]
    assert len(counts) >= 4 and len(set(counts)) > 1, counts  # uneven shards, or the test proves little
    yield url
    store = open_store(url)
    for key in store.list():
        store.delete(key)


def _keys(batches) -> list[str]:
    return [k for b in batches for k in b["__key__"]]


# ------------------------------------------------------------------- partition (pure arithmetic)


@pytest.mark.parametrize("counts", [[24], [7, 7, 7, 3], [1, 9, 2, 5, 8], [3]])
def test_plan_partitions_every_epoch(counts):
    """Exhaustive over small configurations: every rank gets B full batches; with the default B
    the ranks' samples cover the data, and only the R*B*b - N wrap-around positions repeat."""
    n = sum(counts)
    for world, workers, b, buf in itertools.product((1, 2, 3), (1, 2, 3), (1, 2, 4), (1, 5)):
        plan = EpochPlan(counts, b, world, workers, buf, seed=7)
        assert plan.batches == -(-n // (world * b))
        for epoch in (0, 1):
            taken = Counter()
            for rank in range(world):
                for step in range(plan.batches):
                    batch = plan.batch_samples(epoch, rank, step)
                    assert len(batch) == b
                    taken.update(batch)
            assert set(taken) == {(s, i) for s, c in enumerate(counts) for i in range(c)}
            assert sum(taken.values()) - n == world * plan.batches * b - n < world * b
            if world * plan.batches * b <= 2 * n:
                assert max(taken.values()) <= 2


def test_worker_schedule_interleaves_to_step_order():
    """DataLoader worker t mod W gets stream batch t: the schedule must make that step order."""
    plan = EpochPlan([10, 7], 2, 1, 3, 4, seed=0)  # B = 9, not a multiple of W = 3
    for start in (StreamPosition(0, 0), StreamPosition(0, 4), StreamPosition(2, 8)):
        per_worker = [worker_schedule(plan, start, w) for w in range(3)]
        merged = [next(per_worker[t % 3]) for t in range(30)]
        flat = [(e, role + m * 3) for e, role, m in merged]  # (epoch, step)
        first = start.epoch * plan.batches + start.step
        assert flat == [(f // plan.batches, f % plan.batches) for f in range(first, first + 30)]


def test_position_arithmetic():
    assert StreamPosition(0, 5).advanced(7, 6) == StreamPosition(2, 0)
    assert StreamPosition(3, 0).advanced(0, 6) == StreamPosition(3, 0)


# ------------------------------------------------------------------- the real stream on S3


def test_two_ranks_two_workers_disjoint_complete_equal(shards_url):
    per_rank = []
    for rank in range(2):
        cfg = StreamConfig(shards_url, batch_size=3, image_size=SIZE, loader_workers=2, shuffle_buffer=4, seed=11)
        stream = ShardStream(cfg, rank=rank, world_size=2)
        assert stream.batches_per_epoch == 4
        batches = take(stream.iter_from(StreamPosition()), 2 * stream.batches_per_epoch)
        assert all(b["inputs"].shape == (3, 41, *SIZE) for b in batches)
        # the batches are exactly the plan's, in step order (worker roles interleave correctly)
        plan, manifest = stream.plan, stream.manifest
        want = [[manifest.shards[s].keys[i] for s, i in plan.batch_samples(e, rank, k)]
                for e in (0, 1) for k in range(plan.batches)]
        assert [b["__key__"] for b in batches] == want
        per_rank.append(batches)
    all_keys = [s.keys for s in ShardStream(StreamConfig(shards_url, 3, SIZE, loader_workers=0)).manifest.shards]
    everything = sorted(k for ks in all_keys for k in ks)
    for epoch in (0, 1):
        r0, r1 = (_keys(batches[epoch * 4:(epoch + 1) * 4]) for batches in per_rank)
        assert len(r0) == len(r1) == 12 and len(set(r0)) == 12 and len(set(r1)) == 12
        assert not set(r0) & set(r1)
        assert sorted(r0 + r1) == everything
    assert _keys(per_rank[0][:4]) != _keys(per_rank[0][4:])  # reshuffled for epoch 1


@pytest.mark.parametrize("workers", [0, 2])
def test_reused_buffers_give_the_same_batches(shards_url, workers):
    base = dict(batch_size=3, image_size=SIZE, loader_workers=workers, shuffle_buffer=6, seed=2)
    plain = take(ShardStream(StreamConfig(shards_url, **base)).iter_from(StreamPosition(0, 1)), 10)
    it = ShardStream(StreamConfig(shards_url, reuse_buffers=True, **base)).iter_from(StreamPosition(0, 1))
    slots, storages = [], set()
    for want in plain:
        got = next(it)
        slots.append(tuple(got["__slot__"].tolist()))
        storages.add(got["inputs"].untyped_storage().data_ptr())
        assert got["__key__"] == want["__key__"]
        assert all(torch.equal(got[k], want[k]) for k in want if isinstance(want[k], torch.Tensor))
    it.close()
    n_slots = 2 if workers == 0 else 2 + 2  # prefetch_factor + 2 per worker
    assert len(set(slots)) <= max(1, workers) * n_slots < len(slots)  # buffers were recycled
    if workers == 0:
        assert len(storages) <= n_slots  # the very same memory, reused


@pytest.mark.parametrize("workers", [0, 2])
def test_consumer_side_representation_gives_the_same_batches(shards_url, workers):
    """Workers ship uint8 + heatmap profiles, this process expands: bit-identical to loader-built batches."""
    base = dict(batch_size=3, image_size=SIZE, loader_workers=workers, shuffle_buffer=6, seed=4,
                representation_options={"sigma": 2.0})
    plain = take(ShardStream(StreamConfig(shards_url, **base)).iter_from(StreamPosition(1, 2)), 6)
    for reuse in (False, True):
        stream = ShardStream(StreamConfig(shards_url, representation_on="consumer", reuse_buffers=reuse, **base))
        compact = take(stream.iter_from(StreamPosition(1, 2), expand=False), 1)[0]
        assert compact["person_u8"].dtype == torch.uint8 and compact["pose_gy"].shape == (3, 18, SIZE[0])
        it = stream.iter_from(StreamPosition(1, 2))
        for want in plain:
            got = next(it)
            assert got["__key__"] == want["__key__"]
            assert sorted(k for k in got if not k.startswith("__")) == sorted(k for k in want if not k.startswith("__"))
            for k, v in want.items():
                if isinstance(v, torch.Tensor) and not k.startswith("__"):
                    assert got[k].dtype == v.dtype and got[k].shape == v.shape, k
                    assert torch.equal(got[k], v), k
        it.close()


def test_uneven_world_pads_with_repeats_only(shards_url):
    cfg = StreamConfig(shards_url, batch_size=3, image_size=SIZE, loader_workers=0, shuffle_buffer=8)
    seen = []
    for rank in range(5):
        stream = ShardStream(cfg, rank=rank, world_size=5)
        assert stream.batches_per_epoch == 2  # ceil(24 / 15)
        seen += _keys(take(stream.iter_from(StreamPosition()), 2))
    counts = Counter(seen)
    assert len(seen) == 30 and len(counts) == 24 and max(counts.values()) == 2


def test_resume_is_exact_and_does_not_replay(shards_url, monkeypatch):
    opts = dict(hflip_p=0.5, affine_p=0.5)
    cfg = StreamConfig(shards_url, batch_size=2, image_size=(48, 36), loader_workers=2, shuffle_buffer=4,
                       seed=3, augment=True, augment_options=opts)
    stream = ShardStream(cfg)
    assert stream.batches_per_epoch == 12
    assert_exact_resume(stream, (StreamPosition(0, 5), StreamPosition(1, 1), StreamPosition(0, 11)))

    # In-process (loader_workers=0): the first block fetched is the one holding the resume step.
    fetched = record_block_fetches(monkeypatch)
    single = ShardStream(StreamConfig(shards_url, batch_size=2, image_size=SIZE, loader_workers=0,
                                      shuffle_buffer=4, seed=3))
    take(single.iter_from(StreamPosition(1, 9)), 1)
    assert fetched[0] == (1, 0, 4)  # step 9 * b=2 -> position 18 -> block 4 of L=4; nothing earlier


# ------------------------------------------------------------------- corrupt input


def _png(labels: np.ndarray) -> bytes:
    return cv2.imencode(".png", labels.astype(np.uint8))[1].tobytes()


def _corrupt(case: str, members: dict[str, bytes]) -> dict[str, bytes]:
    m = dict(members)
    if case == "bad jpeg":
        m["person.jpg"] = b"\xff\xd8\xff\xe0 this is not a JPEG"
    elif case == "missing modality":
        del m["parse.png"]
    elif case == "label out of range":
        labels = np.zeros(SIZE, np.uint8)
        labels[10:20, 10:20] = 25
        m["parse.png"] = _png(labels)
    elif case == "partial second person":  # a triplet whose partner lost two of its files
        m["target.person.jpg"] = m["person.jpg"]
    elif case == "wrong keypoint count":  # a DressCode-style keypoint file with 17 points
        meta = json.loads(m["meta.json"])
        m["meta.json"] = serialise_meta({**meta, "pose_format": "coco18", "keypoint_frame": [512, 384]})
        m["pose.json"] = json.dumps({"keypoints": [[10.0, 10.0, 1.0, i] for i in range(17)]}).encode()
    elif case == "wrong size":
        meta = json.loads(m["meta.json"])
        meta["original_size"] = [SIZE[0] * 2, SIZE[1] * 2]
        m["meta.json"] = serialise_meta(meta)
    return m


CASES = {"bad jpeg": "bad image", "missing modality": "missing modality", "label out of range": "label out of range",
         "wrong size": "wrong size", "truncated member": "damaged tar member",
         "partial second person": "missing modality", "wrong keypoint count": "bad pose"}


@pytest.mark.parametrize("case", list(CASES))
def test_corrupt_sample_is_skipped_counted_and_logged(case, dataset, s3_prefix, caplog):
    good = source_samples(dataset, 9)
    victim = good[4][0]
    cut = None
    if case == "truncated member":
        shards = [good[:4], good[5:], good[4:5]]  # the victim alone at the end of the last shard
        cut = {2: 512 + 300}  # its first member's header and 300 bytes of its data
    else:
        samples = [(k, _corrupt(case, m) if k == victim else m) for k, m in good]
        shards = [samples[:5], samples[5:]]
    publish_shards(s3_prefix, shards, cut)

    cfg = StreamConfig(s3_prefix, batch_size=3, image_size=SIZE, loader_workers=0, shuffle_buffer=9,
                       max_bad_fraction=0.5)
    stream = ShardStream(cfg)
    with caplog.at_level(logging.WARNING, logger="shards.stream"):
        batches = take(stream.iter_from(StreamPosition()), stream.batches_per_epoch)
    keys = _keys(batches)
    assert len(batches) == 3 and len(keys) == 9  # full batches in spite of the bad sample
    assert victim not in keys and set(keys) == {k for k, _ in good} - {victim}
    assert sum(int(b["__bad__"]) for b in batches) == 1
    stats = stream.bad_sample_stats
    assert (stats.bad, stats.seen) == (1, 9) and stats.reasons == Counter({CASES[case]: 1})
    assert any(victim in r.getMessage() and "skipping bad sample" in r.getMessage() for r in caplog.records)

    if case != "truncated member":  # verify names the same sample
        report = verify_shards(s3_prefix)
        assert [(f.key, CASES[case] in f.problem) for f in report.failures] == [(victim, True)]


def test_too_many_bad_samples_raises_with_counts_and_keys(dataset, s3_prefix):
    good = source_samples(dataset, 12)
    victims = {good[2][0], good[7][0], good[9][0]}
    samples = [(k, _corrupt("bad jpeg", m) if k in victims else m) for k, m in good]
    publish_shards(s3_prefix, [samples[:6], samples[6:]])
    cfg = StreamConfig(s3_prefix, batch_size=2, image_size=SIZE, loader_workers=2, shuffle_buffer=12,
                       max_bad_fraction=0.05)
    with pytest.raises(TooManyBadSamplesError) as err:
        take(ShardStream(cfg).iter_from(StreamPosition()), 12)
    text = str(err.value)
    assert "max_bad_fraction 5.0%" in text and "bad image" in text
    assert any(v in text for v in victims) and "vton shard verify" in text


def _tar_slice(members: dict[str, bytes], fmt: int = tarfile.USTAR_FORMAT) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def test_sample_slices_read_without_tarfile_give_what_tarfile_gives():
    """shards.tario reads plain headers itself (bench/p1: ~4x faster than tarfile's reader) and
    leaves everything else to tarfile; members, refusals and damage reports are the same."""
    from shards.tario import CorruptSampleError, _plain_members, _tarfile_members, parse_sample

    members = {"k1.person.jpg": bytes(range(256)) * 5, "k1.meta.json": b"{}", "k1.empty.txt": b""}
    plain = _tar_slice(members)
    assert _plain_members(plain) == _tarfile_members(plain, "s") == list(members.items())
    assert parse_sample(plain, "s", "k1") == {"person.jpg": members["k1.person.jpg"], "meta.json": b"{}",
                                              "empty.txt": b""}
    long_name = _tar_slice({"k1." + "m" * 120 + ".png": b"y"}, tarfile.PAX_FORMAT)  # a PAX header: tarfile reads it
    assert _plain_members(long_name) is None and parse_sample(long_name, "s", "k1") == {"m" * 120 + ".png": b"y"}
    with pytest.raises(UnsafeMemberError, match="'..' component"):
        parse_sample(_tar_slice({"../k1.person.jpg": b"x"}), "s", "k1")
    damaged = bytearray(plain)
    damaged[5] ^= 0xFF  # a byte of the first name: its header checksum no longer matches
    for broken in (bytes(damaged), plain[:512 + 300]):  # ... and a slice cut inside the first member
        with pytest.raises(CorruptSampleError, match="k1.*damaged tar data"):
            parse_sample(broken, "s", "k1")
    with pytest.raises(CorruptSampleError, match="belongs to another sample"):
        parse_sample(_tar_slice({"k2.person.jpg": b"x"}), "s", "k1")


@pytest.mark.parametrize("member", ["../evil.person.jpg", "/etc/evil.person.jpg", "link"])
def test_hostile_member_is_rejected_by_stream_and_verify(member, dataset, s3_prefix):
    (key, members), = source_samples(dataset, 1)
    buf = io.BytesIO()
    offsets = []
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        offsets.append(0)
        for name, data in sorted(members.items()):
            info = tarfile.TarInfo(f"{key}.{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        if member == "link":
            info = tarfile.TarInfo(f"{key}.zlink.jpg")
            info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
            tar.addfile(info)
            shown = f"{key}.zlink.jpg"
        else:
            info = tarfile.TarInfo(member)
            info.size = 4
            tar.addfile(info, io.BytesIO(b"evil"))
            shown = member
        end = tar.offset
    data = buf.getvalue()
    sha = hashlib.sha256(data).hexdigest()
    rec = ShardRecord(shard_name("train", 0, sha), 1, len(data), sha, (key,), (0, end))
    store = open_store(s3_prefix)
    store.put_bytes(rec.name, data)
    Manifest(layout="viton_hd", split="train", shards=[rec]).save(store)

    stream = ShardStream(StreamConfig(s3_prefix, batch_size=1, image_size=SIZE, loader_workers=0))
    with pytest.raises(UnsafeMemberError) as err:
        take(stream.iter_from(StreamPosition()), 1)
    assert rec.name in str(err.value) and shown.lstrip("/") in str(err.value)
    report = verify_shards(s3_prefix)
    assert not report.ok and any("unsafe member" in f.problem and shown.lstrip("/") in f.problem
                                 for f in report.failures)


def test_config_errors_name_the_option(shards_url):
    with pytest.raises(ValueError, match="batch_size"):
        StreamConfig(shards_url, batch_size=0, image_size=SIZE)
    with pytest.raises(ValueError, match="max_bad_fraction"):
        StreamConfig(shards_url, batch_size=1, image_size=SIZE, max_bad_fraction=1.5)
    with pytest.raises(ValueError, match="unknown augmentation option"):
        ShardStream(StreamConfig(shards_url, 1, SIZE, augment_options={"hflip": 1}))
    with pytest.raises(ValueError, match="representation_on must be one of"):
        StreamConfig(shards_url, 1, SIZE, representation_on="gpu")
    with pytest.raises(ValueError, match="'viton_hd' has no device-side form"):
        StreamConfig(shards_url, 1, SIZE, representation="viton_hd", representation_on="consumer")
    stream = ShardStream(StreamConfig(shards_url, 2, SIZE, loader_workers=0))
    with pytest.raises(ValueError, match="outside an epoch"):
        stream.iter_from(StreamPosition(0, stream.batches_per_epoch))


# ------------------------------------------------------------------- augmentation


def _sample(h: int = 64, w: int = 48):
    from vton_models.representation import DecodedSample

    rng = np.random.default_rng(0)
    person = rng.integers(0, 255, (h, w, 3), dtype=np.uint8)
    parse = np.zeros((h, w), np.uint8)
    parse[10:30, 4:12] = 14  # left arm on the image's left side
    parse[10:30, 30:40] = 5
    pose = np.zeros((25, 3), np.float32)
    pose[2] = (8.0, 20.0, 0.9)  # r_shoulder inside the arm blob
    pose[5] = (35.0, 20.0, 0.8)  # l_shoulder inside the garment blob
    return DecodedSample(person=person, cloth=person.copy(), cloth_mask=(parse == 5).astype(np.uint8),
                         parse=parse, pose=pose, pose_format="body25", key="s")


def test_hflip_swaps_lip_labels_and_keypoints():
    from shards.transforms import hflip_sample

    s = _sample()
    f = hflip_sample(s)
    w = s.size[1]
    assert (f.parse[10:30, w - 12:w - 4] == 15).all() and not (f.parse == 14).any()  # left arm -> right arm
    assert np.array_equal(f.person, s.person[:, ::-1]) and np.array_equal(f.cloth, s.cloth[:, ::-1])
    assert np.allclose(f.pose[5], (w - 1 - 8.0, 20.0, 0.9)) and np.allclose(f.pose[2], (w - 1 - 35.0, 20.0, 0.8))
    assert not f.pose[[0, 1, 3]].any()  # undetected points stay undetected
    back = hflip_sample(f)
    assert all(np.array_equal(getattr(back, k), getattr(s, k)) for k in ("person", "cloth", "cloth_mask", "parse", "pose"))


def test_resize_keeps_labels_and_scales_keypoints():
    from shards.transforms import resize_sample

    s = _sample()
    r = resize_sample(s, (32, 24))
    assert r.person.shape == (32, 24, 3) and r.parse.shape == (32, 24) and r.cloth_mask.shape == (32, 24)
    assert set(np.unique(r.parse)) <= set(np.unique(s.parse))  # nearest: no invented labels
    assert np.allclose(r.pose[2], ((8 + 0.5) * 0.5 - 0.5, (20 + 0.5) * 0.5 - 0.5, 0.9))
    assert not r.pose[0].any()


def test_augmenter_geometry_is_consistent_and_deterministic():
    from shards.transforms import Augmenter

    aug = Augmenter((64, 48), True, dict(hflip_p=0.5, affine_p=1.0, rotate=10.0, color_jitter_p=0.0, blur_p=0.0))
    s = _sample()
    moved = 0
    for seed in range(12):
        a, b = aug(s, (seed, 1)), aug(s, (seed, 1))
        assert all(np.array_equal(getattr(a, k), getattr(b, k)) for k in ("person", "parse", "pose"))
        flipped = bool((a.parse == 15).any())
        # keypoints still sit on their body part (after a flip the shoulders swap names and sides)
        expect = {5: 15, 2: 5} if flipped else {2: 14, 5: 5}
        for i, label in expect.items():
            x, y, c = a.pose[i]
            if c > 0:
                assert a.parse[int(round(y)), int(round(x))] == label, (seed, i)
        assert np.array_equal(a.cloth, s.cloth[:, ::-1] if flipped else s.cloth)  # the in-shop cloth is not moved
        moved += not np.array_equal(a.parse, s.parse)
    assert moved >= 10


def test_photometric_jitter_hits_person_and_cloth_alike():
    from shards.transforms import Augmenter

    aug = Augmenter((64, 48), True, dict(color_jitter_p=1.0, blur_p=1.0))
    s = _sample()
    out = aug(s, 7)
    assert not np.array_equal(out.person, s.person)
    assert np.array_equal(out.person, out.cloth)  # identical inputs, identical parameters
    assert np.array_equal(out.parse, s.parse) and np.array_equal(out.pose, s.pose)  # RGB only
    assert not np.array_equal(aug(s, 8).person, out.person)
    plain = Augmenter((32, 24), False)(s, 7)
    assert plain.person.shape == (32, 24, 3)
