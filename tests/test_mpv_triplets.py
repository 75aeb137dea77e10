"""The ``mpv_triplets`` layout over the synthetic MPV set: reader, bad input, and the shard round trip.

Two-person samples (source A, target B: the same person and garment in another pose) go through
build -> verify -> stream byte for byte, and the stream's resume and rank/worker partition hold for
them. Store-backed tests run on a ``file://`` destination and on the real S3 server (ids ``s3``;
those need the local stack).
"""

from __future__ import annotations

import json
import re
import shutil
import uuid
from collections import Counter
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from shards.decode import decode_sample, derive_cloth_mask
from shards.layouts import read_layout
from shards.layouts.common import UnsafePathError, safe_key, strip_ext, unsafe_key
from shards.layouts.mpv_triplets import parse_flag, unpaired_cloths
from shards.manifest import Manifest
from shards.sample import TARGET_MEMBERS, MissingModalityError
from shards.store import open_store
from shards.stream import ShardStream, StreamConfig, StreamPosition
from shards.synthetic_mpv import TRIPLETS_FILE, synthesize
from shards.tario import scan_shard
from shards.writer import build_shards, serialise_meta, verify_shards
from vton_models.registry import REPRESENTATIONS, register_representation
from vton_models.representation import keypoints_from_openpose
from vton_models.representation.base import Representation
from stream_checks import as_built, assert_exact_resume, assert_streams_sources, one_epoch, record_block_fetches, take

SIZE = (64, 48)
N = 8  # identities: 6 train (2 with three photos), 2 test
TRAIN_TRIPLETS, TRAIN_FRONT, TEST_TRIPLETS = 20, 12, 4
META_KEYS = {"layout", "split", "original_size", "pair_id", "person_id", "cloth_id", "unpaired_cloth_id",
             "unpaired_cloth_key", "pose_format", "target_person_id", "target_pose_format", "triplet_id"}


@pytest.fixture(scope="module")
def synth(tmp_path_factory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("mpv_triplets") / "mpv"
    return root, synthesize(root, n=N, size=SIZE, seed=4)


@pytest.fixture(scope="module")
def mpv(synth) -> Path:
    return synth[0]


def _lines(root: Path) -> list[list[str]]:
    return [line.split("\t") for line in (root / TRIPLETS_FILE).read_text().splitlines()]


def _identities(root: Path) -> dict[str, dict]:
    """Photo name -> its identity card (from synthetic.json)."""
    cards = json.loads((root / "synthetic.json").read_text())["identities"]
    return {photo: card for card in cards for photo in card["photos"]}


def _copy(mpv: Path, tmp_path: Path) -> Path:
    dest = tmp_path / "mpv"
    shutil.copytree(mpv, dest)
    return dest


def _key(a: str, b: str) -> str:
    return safe_key(f"{strip_ext(a)}|{strip_ext(b)}")


# ----------------------------------------------------------------------------------- reader


def test_synthetic_report_counts_and_triplets_file(synth):
    root, report = synth
    assert report["triplets_file"] == str(root / TRIPLETS_FILE)
    assert report["counts"]["train"] == {"identities": 6, "persons": 14, "cloths": 6,
                                         "triplets": TRAIN_TRIPLETS, "front_triplets": TRAIN_FRONT}
    assert report["counts"]["test"] == {"identities": 2, "persons": 4, "cloths": 2,
                                        "triplets": TEST_TRIPLETS, "front_triplets": TEST_TRIPLETS}
    files = [p for p in root.rglob("*") if p.is_file()]
    assert len(files) == report["files"]
    lines = _lines(root)
    assert len(lines) == TRAIN_TRIPLETS + TEST_TRIPLETS and all(len(f) == 4 for f in lines)
    a, b, cloth, split = lines[0]
    assert (a, b, cloth, split) == ("RE00000D05M/RE00000D05M-Q11@10=person_half_front.jpg",
                                    "RE00000D05M/RE00000D05M-Q11@11=person_whole_front.jpg",
                                    "RE00000D05M/RE00000D05M-Q11@8=cloth_front.jpg", "train")
    # MPV's pose files: old OpenPose COCO-18 ("pose_keypoints", 18 x 3)
    doc = json.loads((root / "all_person_clothes_keypoints" / f"{strip_ext(a)}_keypoints.json").read_text())
    assert len(doc["people"][0]["pose_keypoints"]) == 54
    # determinism: the same arguments give the same bytes
    again = synthesize(root.parent / "again", n=N, size=SIZE, seed=4)
    assert again["bytes"] == report["bytes"]
    for p in files:
        assert (root.parent / "again" / p.relative_to(root)).read_bytes() == p.read_bytes(), p


def test_same_identity_two_poses(mpv):
    """A and B share garment, colours and hair; only the pose differs (and so the pixels)."""
    for a, b, cloth, _ in _lines(mpv)[:6]:
        pa, pb = (np.asarray(Image.open(mpv / "all_parsing" / f"{strip_ext(n)}.png")) for n in (a, b))
        ia, ib = (cv2.imread(str(mpv / "all" / n)) for n in (a, b))
        assert not np.array_equal(pa, pb)
        for label in (2, 5, 13):  # hair, upper clothes, face: the same colours in both photos
            ca, cb = ia[pa == label].mean(0), ib[pb == label].mean(0)
            assert np.abs(ca - cb).max() < 25, (a, b, label, ca, cb)
        ka = json.loads((mpv / "all_person_clothes_keypoints" / f"{strip_ext(a)}_keypoints.json").read_text())
        kb = json.loads((mpv / "all_person_clothes_keypoints" / f"{strip_ext(b)}_keypoints.json").read_text())
        assert ka["people"][0]["pose_keypoints"] != kb["people"][0]["pose_keypoints"]


@pytest.mark.parametrize("split,count", [("train", TRAIN_TRIPLETS), ("test", TEST_TRIPLETS)])
def test_reader_one_sample_per_triplet(mpv, split, count):
    it = read_layout("mpv_triplets", mpv, split)
    samples = list(it)
    assert len(samples) == count and it.stats.yielded == count and it.stats.skipped_count == 0
    lines = [f for f in _lines(mpv) if f[3] == split]
    assert [s.key for s in samples] == [_key(a, b) for a, b, _, _ in lines]  # triplets-file order
    ident = _identities(mpv)
    for s, (a, b, cloth, _) in zip(samples, lines):
        sa, sb = strip_ext(a), strip_ext(b)
        assert "." not in s.key and "/" not in s.key and unsafe_key(s.key) == f"{sa}|{sb}"
        assert set(s.paths) == {"person.jpg", "cloth.jpg", "cloth_mask.png", "parse.png", "pose.json", *TARGET_MEMBERS}
        assert s.paths["person.jpg"] == mpv / "all" / a
        assert s.paths["parse.png"] == mpv / "all_parsing" / f"{sa}.png"
        assert s.paths["pose.json"] == mpv / "all_person_clothes_keypoints" / f"{sa}_keypoints.json"
        assert s.paths["cloth.jpg"] == mpv / "all" / cloth
        assert s.paths["cloth_mask.png"] == mpv / "all" / f"{strip_ext(cloth)}_mask.jpg"
        assert s.paths["target.person.jpg"] == mpv / "all" / b
        assert s.paths["target.parse.png"] == mpv / "all_parsing" / f"{sb}.png"
        assert s.paths["target.pose.json"] == mpv / "all_person_clothes_keypoints" / f"{sb}_keypoints.json"
        m = s.meta
        assert set(m) == META_KEYS
        assert (m["layout"], m["split"], m["original_size"]) == ("mpv_triplets", split, list(SIZE))
        assert m["pair_id"] == f"{a} {b} {cloth}"
        assert (m["person_id"], m["target_person_id"], m["cloth_id"]) == (sa, sb, strip_ext(cloth))
        assert m["triplet_id"] == f"{sa}|{sb}"
        assert (m["pose_format"], m["target_pose_format"]) == ("coco18", "coco18")
        # the synthetic set's truth: A and B are two photos of one identity, the cloth is its garment
        assert a != b and ident[a] is ident[b] and ident[a]["cloth"] == cloth


def _check_unpaired(samples) -> None:
    by_key = {s.key: s for s in samples}
    cloths = sorted({s.meta["cloth_id"] for s in samples})
    used = Counter()
    for s in samples:
        other, holder = s.meta["unpaired_cloth_id"], s.meta["unpaired_cloth_key"]
        if len(cloths) < 2:
            assert other is None and holder is None
            continue
        assert other != s.meta["cloth_id"] and other in cloths
        assert holder == min(k for k, t in by_key.items() if t.meta["cloth_id"] == other)
        assert by_key[holder].meta["split"] == s.meta["split"]
        used[other] += 1
    if len(cloths) >= 2:  # a derangement of the cloths: every cloth is shown (to another cloth's wearers)
        worn = Counter(s.meta["cloth_id"] for s in samples)
        assert set(used) == set(cloths)
        assert sorted(used.values()) == sorted(worn.values())


@pytest.mark.parametrize("split", ["train", "test"])
def test_unpaired_cloth_is_another_triplets_cloth_deterministically(mpv, split):
    samples = list(read_layout("mpv_triplets", mpv, split))
    _check_unpaired(samples)
    again = list(read_layout("mpv_triplets", mpv, split))
    assert [s.meta for s in again] == [s.meta for s in samples]
    # train: 6 cloths, shift 3 -> identity k gets identity (k + 3) mod 6's cloth
    if split == "train":
        first = samples[0].meta
        assert first["unpaired_cloth_id"] == "RE00003D05M/RE00003D05M-Q11@8=cloth_front"
    _check_unpaired(list(read_layout("mpv_triplets", mpv, split, options={"front_only": True})))


def test_unpaired_rule_edge_cases():
    assert unpaired_cloths({}) == {}
    assert unpaired_cloths({"k1": "c", "k2": "c"}) == {"k1": None, "k2": None}
    assert unpaired_cloths({"b": "c2", "a": "c1", "c": "c1"}) == {"a": ("c2", "b"), "c": ("c2", "b"), "b": ("c1", "a")}


@pytest.mark.parametrize("flag,count", [(True, TRAIN_FRONT), ("true", TRAIN_FRONT), ("1", TRAIN_FRONT),
                                        ("YES", TRAIN_FRONT), (False, TRAIN_TRIPLETS), ("false", TRAIN_TRIPLETS),
                                        ("0", TRAIN_TRIPLETS), (None, TRAIN_TRIPLETS)])
def test_front_only(mpv, flag, count):
    samples = list(read_layout("mpv_triplets", mpv, "train", options={"front_only": flag}))
    assert len(samples) == count
    if count == TRAIN_FRONT:
        for s in samples:
            a, b, cloth = s.meta["pair_id"].split()
            assert all("front" in n.rpartition("/")[2] for n in (a, b, cloth))
    else:
        assert any("back" in s.meta["pair_id"] for s in samples)


def test_front_only_checks_the_cloth_and_rejects_non_booleans(mpv, tmp_path):
    with pytest.raises(ValueError, match=r"front_only='maybe' is not a boolean"):
        read_layout("mpv_triplets", mpv, "train", options={"front_only": "maybe"})
    assert parse_flag("off") is False and parse_flag("on") is True
    root = _copy(mpv, tmp_path)
    old = "RE00000D05M/RE00000D05M-Q11@8=cloth_front"
    new = "RE00000D05M/RE00000D05M-Q11@9=cloth_back"
    for suffix in (".jpg", "_mask.jpg"):
        (root / "all" / f"{old}{suffix}").rename(root / "all" / f"{new}{suffix}")
    path = root / TRIPLETS_FILE
    path.write_text(path.read_text().replace(old, new))
    keys = {s.key for s in read_layout("mpv_triplets", root, "train", options={"front_only": "true"})}
    assert len(keys) == TRAIN_FRONT - 2 and not any(unsafe_key(k).startswith("RE00000D05M/") for k in keys)


def test_subset_pins_an_exact_set(mpv, tmp_path):
    lines = _lines(mpv)
    train = [f for f in lines if f[3] == "train"]
    test = [f for f in lines if f[3] == "test"]
    subset = tmp_path / "frontal.txt"
    subset.write_text("\n".join([
        "# the triplets of a paper's subset",
        " ".join(train[5]),  # A B cloth split
        "",
        " ".join(train[2][:3]),  # A B cloth
        "\t".join(train[9][:2]),  # A B (a pairs file)
        " ".join(test[1]),  # another split: ignored when reading train
    ]) + "\n")
    got = list(read_layout("mpv_triplets", mpv, "train", options={"subset": str(subset)}))
    assert [s.key for s in got] == [_key(*f[:2]) for f in (train[2], train[5], train[9])]  # file order
    _check_unpaired(got)
    assert [s.key for s in read_layout("mpv_triplets", mpv, "test", options={"subset": subset})] == [_key(*test[1][:2])]
    # a relative path is found under the dataset root too
    root = _copy(mpv, tmp_path)
    shutil.copy(subset, root / "frontal_subset.txt")
    rel = list(read_layout("mpv_triplets", root, "train", options={"subset": "frontal_subset.txt"}))
    assert [s.key for s in rel] == [s.key for s in got]
    # subset and front_only together: train[9] is kept only if all three names are front views
    both = list(read_layout("mpv_triplets", mpv, "train", options={"subset": subset, "front_only": "1"}))
    assert {s.key for s in both} == {s.key for s in got if "back" not in s.meta["pair_id"]}


@pytest.mark.parametrize("strict", [True, False])
def test_subset_errors_name_the_subset_line(mpv, tmp_path, strict):
    first = _lines(mpv)[0]
    subset = tmp_path / "subset.txt"
    subset.write_text(f"{' '.join(first)}\n# comment\nRE00000D05M/nobody.jpg {first[1]} {first[2]}\n")
    with pytest.raises(ValueError, match=rf"subset\.txt:3: subset entry 'RE00000D05M/nobody\.jpg .*' is not a "
                                         rf"triplet of .*{TRIPLETS_FILE}"):
        read_layout("mpv_triplets", mpv, "train", strict=strict, options={"subset": subset})
    subset.write_text(f"{' '.join(first[:3])}\n\n{' '.join(first[:3])}\n")
    with pytest.raises(ValueError, match=r"subset\.txt:3: subset entry .* already listed at line 1"):
        read_layout("mpv_triplets", mpv, "train", strict=strict, options={"subset": subset})
    subset.write_text(f"{first[0]}\n")
    with pytest.raises(ValueError, match=r"subset\.txt:1: expected 'A B', 'A B cloth' or 'A B cloth split'"):
        read_layout("mpv_triplets", mpv, "train", strict=strict, options={"subset": subset})
    subset.write_text(f"../../etc/passwd {first[1]}\n")
    with pytest.raises(UnsafePathError, match=r"subset\.txt:1: '\.\./\.\./etc/passwd' leaves the dataset root"):
        read_layout("mpv_triplets", mpv, "train", strict=strict, options={"subset": subset})
    with pytest.raises(FileNotFoundError, match="subset file not found"):
        read_layout("mpv_triplets", mpv, "train", strict=strict, options={"subset": tmp_path / "absent.txt"})
    subset.write_text(" ".join(_lines(mpv)[-1]) + "\n")  # a test triplet only
    with pytest.raises(ValueError, match=r"none of the 20 triplets of split 'train' pass subset="):
        read_layout("mpv_triplets", mpv, "train", strict=strict, options={"subset": subset})


def test_duplicate_triplet_is_an_error_naming_both_lines(mpv, tmp_path):
    root = _copy(mpv, tmp_path)
    path = root / TRIPLETS_FILE
    text = path.read_text()
    n = len(text.splitlines())
    first = text.splitlines()[0]
    path.write_text(text + first + "\n")
    with pytest.raises(ValueError, match=rf"{TRIPLETS_FILE}:{n + 1}: triplet .* already listed at line 1"):
        read_layout("mpv_triplets", root, "train", strict=False)
    a, b, cloth, _ = first.split("\t")  # same (A, B), another cloth: still one key, still an error
    path.write_text(text + f"{a}\t{b}\tRE00009D05M/other=cloth_front.jpg\ttrain\n")
    with pytest.raises(ValueError, match=rf"{TRIPLETS_FILE}:{n + 1}: .* already listed at line 1"):
        read_layout("mpv_triplets", root, "train")
    with pytest.raises(ValueError, match=r"no triplets for split 'val'.*\['test', 'train'\]"):
        read_layout("mpv_triplets", mpv, "val")


@pytest.mark.parametrize("member,folder,suffix", [
    ("target.parse.png", "all_parsing", ".png"),
    ("target.person.jpg", "all", ".jpg"),
    ("target.pose.json", "all_person_clothes_keypoints", "_keypoints.json"),
])
def test_missing_partner_file_strict_and_lenient(mpv, tmp_path, caplog, member, folder, suffix):
    root = _copy(mpv, tmp_path)
    lines = [f for f in _lines(root) if f[3] == "train"]
    a, b = lines[0][:2]  # identity 0 has two photos: b is A in line 1 and B in line 0
    missing = root / folder / f"{strip_ext(b)}{suffix}"
    missing.unlink()
    key = _key(a, b)
    message = f"sample '{key}' is missing {member}: expected {missing}"
    with pytest.raises(MissingModalityError, match=re.escape(message)):
        list(read_layout("mpv_triplets", root, "train"))
    with caplog.at_level("WARNING", logger="shards.layouts"):
        it = read_layout("mpv_triplets", root, "train", strict=False)
        samples = list(it)
    assert len(samples) == TRAIN_TRIPLETS - 2 and it.stats.yielded == TRAIN_TRIPLETS - 2
    assert it.stats.skipped == [(key, member, str(missing)), (_key(b, a), member.removeprefix("target."), str(missing))]
    assert any(key in r.getMessage() and str(missing) in r.getMessage() for r in caplog.records)
    _check_unpaired(samples)  # computed over what is yielded: every unpaired key names a sample here


def test_unsafe_paths_name_the_list_line_or_are_skipped_and_counted(mpv, tmp_path):
    root = _copy(mpv, tmp_path)
    path = root / TRIPLETS_FILE
    text = path.read_text()
    n = len(text.splitlines())
    a, _, cloth, _ = text.splitlines()[0].split("\t")
    path.write_text(text + f"{a}\t../../outside.jpg\t{cloth}\ttest\n")  # even in another split
    with pytest.raises(UnsafePathError, match=rf"{TRIPLETS_FILE}:{n + 1}: '\.\./\.\./outside\.jpg' leaves"):
        read_layout("mpv_triplets", root, "train")
    lenient = read_layout("mpv_triplets", root, "train", strict=False)  # another split's line: dropped
    assert len(list(lenient)) == TRAIN_TRIPLETS and lenient.stats.skipped == []
    lenient = read_layout("mpv_triplets", root, "test", strict=False)  # its own split: skipped and counted
    assert [(member, where) for _, member, where in lenient.stats.skipped] == [("triplets line", f"{path}:{n + 1}")]
    assert len(list(lenient)) == TEST_TRIPLETS
    path.write_text(text)
    # a symlink inside all/ pointing out of the dataset root
    outside = tmp_path / "outside.jpg"
    outside.write_bytes((root / "all" / a).read_bytes())
    (root / "all" / a).unlink()
    (root / "all" / a).symlink_to(outside)
    with pytest.raises(UnsafePathError, match=rf"{TRIPLETS_FILE}:1: .*outside the dataset root"):
        list(read_layout("mpv_triplets", root, "train"))
    lenient = read_layout("mpv_triplets", root, "train", strict=False)
    kept = list(lenient)
    assert lenient.stats.skipped and all(member == "path" for _, member, _ in lenient.stats.skipped)
    assert len(kept) == TRAIN_TRIPLETS - len(lenient.stats.skipped)
    assert all(s.paths["person.jpg"] != root / "all" / a for s in kept)


def test_cloth_mask_is_optional(mpv, tmp_path):
    root = _copy(mpv, tmp_path)
    cloth = _lines(root)[0][2]
    (root / "all" / f"{strip_ext(cloth)}_mask.jpg").unlink()
    samples = list(read_layout("mpv_triplets", root, "train"))
    assert len(samples) == TRAIN_TRIPLETS
    without = [s for s in samples if "cloth_mask.png" not in s.paths]
    assert len(without) == 2 and all(s.meta["cloth_id"] == strip_ext(cloth) for s in without)
    members = {m: p.read_bytes() for m, p in without[0].paths.items()}
    decoded = decode_sample({**members, "meta.json": serialise_meta(without[0].meta)}, without[0].key)
    assert np.array_equal(decoded.cloth_mask, derive_cloth_mask(decoded.cloth))
    on_file = cv2.imread(str(mpv / "all" / f"{strip_ext(cloth)}_mask.jpg"), cv2.IMREAD_GRAYSCALE) >= 128
    assert (decoded.cloth_mask.astype(bool) == on_file).mean() > 0.97  # white background: nearly the mask


# ------------------------------------------------------------------------- shards and stream


def _pair_views(sample, **_options) -> dict[str, np.ndarray]:
    """A test representation carrying both persons through the stream (network range, CHW)."""
    def chw(img: np.ndarray) -> np.ndarray:
        return img.transpose(2, 0, 1).astype(np.float32) / 127.5 - 1.0

    assert sample.target is not None, sample.key
    return {"person": chw(sample.person), "target_person": chw(sample.target.person),
            "target_parse": sample.target.parse.astype(np.int64), "target_pose": sample.target.pose.astype(np.float32)}


PAIR_VIEWS = Representation(name="test_mpv_pair_views", build=_pair_views, reads=("target",))


@pytest.fixture(scope="module", autouse=True)
def pair_views():
    register_representation(PAIR_VIEWS)
    yield PAIR_VIEWS
    REPRESENTATIONS.pop(PAIR_VIEWS.name, None)


def _destination(request, kind: str) -> str:
    if kind == "file":
        return f"file://{request.getfixturevalue('tmp_path_factory').mktemp('shards')}"
    stack = request.getfixturevalue("stack")
    return f"s3://{stack.bucket}/tests/mpv-triplets-{uuid.uuid4().hex[:12]}"


def _cleanup(url: str) -> None:
    if url.startswith("s3://"):
        store = open_store(url)
        for key in store.list():
            store.delete(key)


@pytest.fixture(scope="module", params=["file", "s3"])
def triplet_shards(request, mpv) -> str:
    """The 20 train triplets in uneven shards."""
    url = _destination(request, request.param)
    m = build_shards("mpv_triplets", mpv, "train", url, shard_size_bytes="100KB", workers=2)
    counts = [s.samples for s in m.shards]
    assert sum(counts) == TRAIN_TRIPLETS and len(counts) >= 3 and len(set(counts)) > 1, counts
    yield url
    _cleanup(url)


def _shard_samples(manifest: Manifest) -> dict[str, dict[str, bytes]]:
    store = manifest.store()
    out = {}
    for rec in manifest.shards:
        with store.open_read(rec.name) as f:
            for sample in scan_shard(f, rec.name):
                out[sample.key] = sample.members
    return out


@pytest.mark.parametrize("kind", ["file", "s3"])
def test_build_verify_stream_roundtrip(mpv, request, kind):
    url = _destination(request, kind)
    try:
        expected = {}
        for s in read_layout("mpv_triplets", mpv, "train", options={"front_only": "true"}):
            expected[s.key] = as_built({**{m: Path(p).read_bytes() for m, p in s.paths.items()},
                                        "meta.json": serialise_meta(s.meta)})
        manifest = build_shards("mpv_triplets", mpv, "train", url, shard_size_bytes="100KB", workers=2,
                                layout_options={"front_only": "true"})
        assert manifest.totals["samples"] == TRAIN_FRONT and len(manifest.shards) >= 2
        assert [k for s in manifest.shards for k in s.keys] == list(expected)
        assert manifest.source["layout_options"] == {"front_only": "true"}
        assert manifest.members is not None and all(m in manifest.members for m in TARGET_MEMBERS)
        loaded = Manifest.load(url)
        assert loaded.same_content(manifest)

        # every member byte-identical to its source file
        stored = _shard_samples(loaded)
        assert stored == expected

        report = verify_shards(url)
        assert report.ok, report.summary()
        assert report.samples == TRAIN_FRONT

        # decoded samples carry the partner as .target, with B's own pixels, labels and pose
        for key, members in stored.items():
            d = decode_sample(members, key)
            meta = json.loads(members["meta.json"])
            b = mpv / "all" / meta["pair_id"].split()[1]
            assert d.target is not None and d.target.pose_format == "coco18"
            assert np.array_equal(d.target.person, cv2.imread(str(b))[:, :, ::-1])
            parse_b = mpv / "all_parsing" / f"{meta['target_person_id']}.png"
            assert np.array_equal(d.target.parse, np.asarray(Image.open(parse_b)))
            pose_b = mpv / "all_person_clothes_keypoints" / f"{meta['target_person_id']}_keypoints.json"
            assert np.array_equal(d.target.pose, keypoints_from_openpose(json.loads(pose_b.read_text()), "coco18"))
            assert not np.array_equal(d.target.person, d.person)

        # the stream: every sample once per epoch, the target's pixels unchanged without augmentation
        cfg = StreamConfig(url, batch_size=3, image_size=SIZE, representation=PAIR_VIEWS.name, loader_workers=0,
                           augment=False, shuffle_buffer=4)
        stream = ShardStream(cfg)
        assert stream.batches_per_epoch == 4
        assert all(pose.shape == (18, 3) for pose in one_epoch(stream, "target_pose").values())
        assert_streams_sources(stream, "target_person", expected, "target.person.jpg")
    finally:
        _cleanup(url)


def _keys(batches) -> list[str]:
    return [k for b in batches for k in b["__key__"]]


def test_two_ranks_two_workers_disjoint_complete(triplet_shards):
    per_rank = []
    for rank in range(2):
        cfg = StreamConfig(triplet_shards, batch_size=2, image_size=SIZE, representation=PAIR_VIEWS.name,
                           loader_workers=2, shuffle_buffer=4, seed=11)
        stream = ShardStream(cfg, rank=rank, world_size=2)
        assert stream.batches_per_epoch == 5
        batches = take(stream.iter_from(StreamPosition()), 2 * stream.batches_per_epoch)
        assert all(b["target_person"].shape == (2, 3, *SIZE) for b in batches)
        plan, manifest = stream.plan, stream.manifest
        want = [[manifest.shards[s].keys[i] for s, i in plan.batch_samples(e, rank, k)]
                for e in (0, 1) for k in range(plan.batches)]
        assert [b["__key__"] for b in batches] == want  # step order across the two workers
        per_rank.append(batches)
    everything = sorted(k for s in Manifest.load(triplet_shards).shards for k in s.keys)
    assert len(everything) == TRAIN_TRIPLETS
    for epoch in (0, 1):
        r0, r1 = (_keys(batches[epoch * 5:(epoch + 1) * 5]) for batches in per_rank)
        assert len(set(r0)) == len(r0) == 10 and len(set(r1)) == len(r1) == 10
        assert not set(r0) & set(r1)
        assert sorted(r0 + r1) == everything
    assert _keys(per_rank[0][:5]) != _keys(per_rank[0][5:])  # reshuffled for epoch 1


def test_resume_is_exact_with_triplet_shards(triplet_shards, monkeypatch):
    cfg = StreamConfig(triplet_shards, batch_size=2, image_size=(48, 36), representation=PAIR_VIEWS.name,
                       loader_workers=2, shuffle_buffer=4, seed=3, augment=True,
                       augment_options=dict(hflip_p=0.5, affine_p=0.5, color_jitter_p=0.5))
    stream = ShardStream(cfg)
    assert stream.batches_per_epoch == 10
    assert_exact_resume(stream, (StreamPosition(0, 4), StreamPosition(1, 1), StreamPosition(0, 9)))

    fetched = record_block_fetches(monkeypatch)
    single = ShardStream(StreamConfig(triplet_shards, batch_size=2, image_size=SIZE, representation=PAIR_VIEWS.name,
                                      loader_workers=0, shuffle_buffer=4, seed=3))
    take(single.iter_from(StreamPosition(1, 7)), 1)
    assert fetched[0] == (1, 0, 3)  # step 7 * b=2 -> position 14 -> block 3 of L=4; nothing earlier
