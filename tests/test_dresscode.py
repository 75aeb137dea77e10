"""Dress Code: the synthetic writer, the layout reader, decoding, bad input, and a shard round trip.

Only ``test_build_verify_stream_roundtrip[s3]`` needs the local stack (its S3 server); the same
test against a ``file://`` destination does not.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pytest
import webdataset as wds

from shards.decode import decode_sample
from shards.layouts import layout_options, read_layout
from shards.layouts.common import UnsafePathError, unsafe_key
from shards.layouts.dresscode import CATEGORIES, KEYPOINT_FRAME, BadKeypointsError
from shards.manifest import Manifest
from shards.sample import MissingModalityError
from shards.stream import ShardStream, StreamConfig
from shards.synthetic import MARKER, synthesize_layout
from shards.synthetic_dresscode import LIP_TO_ATR, LOSSY_LIP, draw_sample, synthesize
from shards.writer import build_shards, serialise_meta, verify_shards
from vton_models.representation.parse import ATR_TO_LIP, NUM_ATR_LABELS, NUM_LIP_LABELS
from stream_checks import as_built, assert_streams_sources

SIZE = (64, 48)
N, SEED = 18, 5  # 6 per category: 4 train + 2 test each
META_KEYS = {"layout", "split", "original_size", "pair_id", "person_id", "cloth_id", "unpaired_cloth_id",
             "unpaired_cloth_key", "pose_format", "category", "keypoint_frame", "parse_labels"}


@pytest.fixture(scope="module")
def dc(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("dresscode") / "dc"
    synthesize(root, n=N, size=SIZE, seed=SEED)
    return root


@pytest.fixture
def copy(dc, tmp_path) -> Path:
    """A scratch copy of the synthetic set, for tests that break it."""
    root = tmp_path / "dc"
    shutil.copytree(dc, root)
    return root


def _members(sample) -> dict[str, bytes]:
    out = {m: Path(p).read_bytes() for m, p in sample.paths.items()}
    out["meta.json"] = serialise_meta(sample.meta)
    return out


def _index(key: str) -> tuple[str, int]:
    """(category, synthetic sample index) of a key ``<cat>~2F<id>_0``."""
    cat, name = unsafe_key(key).split("/")
    return cat, int(name.removesuffix("_0"))


# ------------------------------------------------------------------------------ synthetic writer


def test_synthesize_report_determinism_and_refusal(dc, tmp_path):
    card = json.loads((dc / MARKER).read_text())
    assert card["layout"] == "dresscode" and len(card["samples"]) == N
    again = tmp_path / "again"
    report = synthesize_layout("dresscode", again, n=N, size=SIZE, seed=SEED)  # dispatch by layout name
    assert report["layout"] == "dresscode" and report["counts"] == {"train": 12, "test": 6}
    assert report["category_counts"] == {c: {"train": 4, "test": 2} for c in CATEGORIES}
    files = sorted(p.relative_to(again) for p in again.rglob("*") if p.is_file())
    assert len(files) == report["files"]
    assert sum((again / f).stat().st_size for f in files if len(f.parts) == 3) == report["bytes"]
    assert all((again / f).read_bytes() == (dc / f).read_bytes() for f in files)  # same arguments, same bytes
    assert synthesize(again, n=3, size=SIZE, seed=SEED)["counts"] == {"train": 3, "test": 0}  # replaces its own set
    assert not (again / "upper_body" / "images" / "000003_0.jpg").exists()

    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="refusing"):
        synthesize(foreign, n=3, size=SIZE)
    assert sorted(p.name for p in foreign.iterdir()) == ["notes.txt"]


def test_lip_atr_tables_are_inverse_where_lossless():
    assert len(LIP_TO_ATR) == NUM_LIP_LABELS and max(LIP_TO_ATR) < NUM_ATR_LABELS
    assert LOSSY_LIP == (3, 7, 8, 10)  # glove, coat, socks, neck: no ATR class of their own
    for lip in range(NUM_LIP_LABELS):
        assert (ATR_TO_LIP[LIP_TO_ATR[lip]] == lip) == (lip not in LOSSY_LIP)
    # ATR -> LIP -> ATR is the identity except for the classes LIP lacks (belt -> pants, bag -> background).
    assert [a for a in range(NUM_ATR_LABELS) if LIP_TO_ATR[ATR_TO_LIP[a]] != a] == [8, 16]


# ------------------------------------------------------------------------------------- reader


@pytest.mark.parametrize("split", ["train", "test"])
def test_reader_yields_one_sample_per_person(dc, split):
    it = read_layout("dresscode", dc, split)
    samples = {s.key: s for s in it}
    assert len(samples) == (12 if split == "train" else 6) and it.stats.yielded == len(samples)
    assert [_index(k)[0] for k in samples] == sorted((_index(k)[0] for k in samples), key=CATEGORIES.index)
    for key, s in samples.items():
        cat, i = _index(key)
        base = dc / cat
        assert key == f"{cat}~2F{i:06d}_0"
        assert s.paths == {
            "person.jpg": base / "images" / f"{i:06d}_0.jpg",
            "cloth.jpg": base / "images" / f"{i:06d}_1.jpg",
            "parse.png": base / "label_maps" / f"{i:06d}_4.png",
            "pose.json": base / "keypoints" / f"{i:06d}_2.json",
            "pose_img.png": base / "skeletons" / f"{i:06d}_5.jpg",
        }
        m = s.meta
        assert set(m) == META_KEYS
        assert (m["layout"], m["split"], m["category"], m["pose_format"], m["parse_labels"]) == (
            "dresscode", split, cat, "coco18", "atr")
        assert m["keypoint_frame"] == list(KEYPOINT_FRAME) and m["original_size"] == list(SIZE)
        assert (m["person_id"], m["cloth_id"]) == (f"{cat}/{i:06d}_0", f"{cat}/{i:06d}_1")
        assert m["pair_id"] == f"{i:06d}_0.jpg {i:06d}_1.jpg"
        if split == "train":
            assert m["unpaired_cloth_id"] is None and m["unpaired_cloth_key"] is None
        else:  # another test garment of the same category, and the sample wearing it
            other = samples[m["unpaired_cloth_key"]]
            assert m["unpaired_cloth_id"] == other.meta["cloth_id"] != m["cloth_id"]
            assert other.meta["category"] == cat


def test_categories_option(dc):
    assert layout_options("dresscode") == ["categories"]
    keys = [s.key for s in read_layout("dresscode", dc, "train", options={"categories": "dresses, upper_body"})]
    assert len(keys) == 8 and [_index(k)[0] for k in keys] == ["upper_body"] * 4 + ["dresses"] * 4
    assert {_index(s.key)[0] for s in read_layout("dresscode", dc, "test", options={"categories": ["lower_body"]})} \
        == {"lower_body"}
    with pytest.raises(ValueError, match=r"unknown category 'shoes'; allowed: upper_body, lower_body, dresses"):
        read_layout("dresscode", dc, "train", options={"categories": "upper_body,shoes"})
    with pytest.raises(ValueError, match="names no category"):
        read_layout("dresscode", dc, "train", options={"categories": " , "})


def test_root_lists_are_read_when_category_lists_are_absent(dc, copy):
    for cat in CATEGORIES:
        for name in ("train_pairs.txt", "test_pairs_paired.txt", "test_pairs_unpaired.txt"):
            (copy / cat / name).unlink()
    for split in ("train", "test"):
        a = [(s.key, s.meta) for s in read_layout("dresscode", dc, split)]
        b = [(s.key, s.meta) for s in read_layout("dresscode", copy, split)]
        assert a == b
    lines = (copy / "train_pairs.txt").read_text().splitlines()
    lines[3] = lines[3].rsplit(" ", 1)[0] + " 7"
    (copy / "train_pairs.txt").write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError, match=r"train_pairs\.txt:4: category '7' is not one of 0 \(upper_body\)"):
        read_layout("dresscode", copy, "train")
    shutil.rmtree(copy / "lower_body")  # default: the category folders present
    assert {_index(s.key)[0] for s in read_layout("dresscode", copy, "test")} == {"upper_body", "dresses"}
    with pytest.raises(FileNotFoundError, match="lower_body"):
        read_layout("dresscode", copy, "test", options={"categories": "lower_body"})
    with pytest.raises(FileNotFoundError, match="val_pairs_paired.txt"):
        read_layout("dresscode", copy, "val")


# ------------------------------------------------------------------------------------- decoding


@pytest.mark.parametrize("split", ["train", "test"])
def test_decoded_members_match_the_drawing(dc, split):
    for s in read_layout("dresscode", dc, split):
        cat, i = _index(s.key)
        drawn = draw_sample(i, cat, SIZE, SEED)
        d = decode_sample(_members(s), s.key)
        # Labels: ATR on disk, LIP once decoded; equal to the drawing wherever the mapping is lossless.
        lossless = ~np.isin(drawn.lip, LOSSY_LIP)
        assert np.array_equal(d.parse[lossless], drawn.lip[lossless]), s.key
        assert np.array_equal(d.parse, np.asarray(ATR_TO_LIP, np.uint8)[list(LIP_TO_ATR)][drawn.lip])
        assert (drawn.lip == 10).any() and not lossless.all()  # the neck is the one lossy label drawn
        # Keypoints: stored in the 512x384 frame, decoded back to pixels of the 64x48 image.
        assert d.pose_format == "coco18" and d.pose.shape == (18, 3)
        seen = drawn.coco[:, 2] > 0
        np.testing.assert_array_equal(d.pose[:, 2] > 0, seen)
        np.testing.assert_allclose(d.pose[seen, :2], drawn.coco[seen, :2], atol=1e-3)
        np.testing.assert_allclose(d.pose[seen, 2], drawn.coco[seen, 2], atol=1e-4)
        stored = np.array(json.loads(s.paths["pose.json"].read_text())["keypoints"])
        assert stored[seen, 0].max() > SIZE[1] and stored[seen, 1].max() > SIZE[0]  # really in the big frame
        assert np.abs(d.person.astype(int) - drawn.person).mean() < 4  # JPEG q95 of the same pixels
        assert d.pose_img is not None and d.pose_img.shape == (*SIZE, 3)
        assert d.cloth_mask.sum() > 0 and d.cloth_mask[0, 0] == 0  # derived from the white background
        garment = {"upper_body": 5, "lower_body": 9, "dresses": 6}[cat]
        assert (d.parse == garment).any()


# ------------------------------------------------------------------------------------- bad input


def _first_key(root: Path, cat: str = "upper_body") -> tuple[str, str]:
    line = (root / cat / "train_pairs.txt").read_text().splitlines()[1]
    ident = line.split()[0].removesuffix("_0.jpg")
    return f"{cat}~2F{ident}_0", ident


def test_missing_keypoints_file(copy, caplog):
    key, ident = _first_key(copy)
    missing = copy / "upper_body" / "keypoints" / f"{ident}_2.json"
    missing.unlink()
    with pytest.raises(MissingModalityError, match=rf"'{key}'.*pose\.json.*{missing}"):
        list(read_layout("dresscode", copy, "train"))
    with caplog.at_level(logging.WARNING, logger="shards.layouts"):
        it = read_layout("dresscode", copy, "train", strict=False)
        keys = [s.key for s in it]
    assert len(keys) == 11 and key not in keys
    assert it.stats.skipped == [(key, "pose.json", str(missing))]
    assert any(str(missing) in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("content,reason", [
    ("17 points", r"expected 18 keypoints of \[x, y, score, id\], got 17"),
    ('{"keypoints": [[1, 2, 0.5, 0]', "not JSON"),
    ('{"people": []}', "not a DressCode keypoints file"),
], ids=["17-points", "malformed-json", "openpose-doc"])
def test_bad_keypoints_file(copy, content, reason, caplog):
    key, ident = _first_key(copy)
    path = copy / "upper_body" / "keypoints" / f"{ident}_2.json"
    if content == "17 points":
        doc = json.loads(path.read_text())
        content = json.dumps({"keypoints": doc["keypoints"][:17]})
    path.write_text(content)
    with pytest.raises(BadKeypointsError, match=rf"'{key}'.*{path}.*{reason}"):
        list(read_layout("dresscode", copy, "train"))
    with caplog.at_level(logging.WARNING, logger="shards.layouts"):
        it = read_layout("dresscode", copy, "train", strict=False)
        keys = [s.key for s in it]
    assert len(keys) == 11 and key not in keys and it.stats.skipped == [(key, "pose.json", str(path))]
    assert any(str(path) in r.getMessage() for r in caplog.records)


def test_pairs_line_leaving_the_root(copy, tmp_path):
    lists = copy / "upper_body" / "train_pairs.txt"
    lines = lists.read_text().splitlines()
    lines.insert(2, "../../outside_0.jpg 000000_1.jpg")
    lists.write_text("\n".join(lines) + "\n")
    with pytest.raises(UnsafePathError, match=rf"{lists}:3: '\.\./\.\./outside_0\.jpg' leaves the dataset root"):
        list(read_layout("dresscode", copy, "train"))
    it = read_layout("dresscode", copy, "train", strict=False)
    assert len(list(it)) == 12
    assert it.stats.skipped_count == 1 and it.stats.skipped[0][1:] == ("pairs line", f"{lists}:3")
    # The builder counts what the reader skipped.
    m = build_shards("dresscode", copy, "train", str(tmp_path / "out"), workers=1, strict=False)
    assert m.totals["samples"] == 12 and m.build_stats.skipped_sources == 1

    # A file that is a symlink out of the root is refused the same way (named by its list line).
    del lines[2]
    lists.write_text("\n".join(lines) + "\n")
    key, ident = _first_key(copy)
    secret = tmp_path / "secret.png"
    secret.write_bytes(b"not yours")
    parse = copy / "upper_body" / "label_maps" / f"{ident}_4.png"
    parse.unlink()
    parse.symlink_to(secret)
    with pytest.raises(UnsafePathError, match=rf"{lists}:2: .*{parse.name} resolves to {secret}"):
        list(read_layout("dresscode", copy, "train"))
    it = read_layout("dresscode", copy, "train", strict=False)
    assert key not in [s.key for s in it] and it.stats.skipped == [(key, "path", f"{lists}:2")]


def test_unpaired_cloth_missing_and_malformed_lists(copy):
    unpaired = (copy / "dresses" / "test_pairs_unpaired.txt").read_text().split()
    gone = copy / "dresses" / "images" / unpaired[1]
    gone.unlink()  # the unpaired garment of the first dresses test person (and the worn one of the second)
    with pytest.raises(MissingModalityError):
        list(read_layout("dresscode", copy, "test"))
    it = read_layout("dresscode", copy, "test", strict=False)
    assert len(list(it)) == 4 and it.stats.skipped_count == 2
    (copy / "upper_body" / "train_pairs.txt").write_text("000000.jpg 000000_1.jpg\n")
    with pytest.raises(ValueError, match=r"train_pairs\.txt:1: person '000000\.jpg' is not named <id>_0"):
        list(read_layout("dresscode", copy, "train"))
    (copy / "upper_body" / "train_pairs.txt").write_text("000000_0.jpg 000000_1.jpg\n000000_0.jpg 000003_1.jpg\n")
    with pytest.raises(ValueError, match=r"train_pairs\.txt:2: person already listed at line 1"):
        list(read_layout("dresscode", copy, "train"))


# ------------------------------------------------------------------------------------- round trip


@pytest.mark.parametrize("dest", ["file", pytest.param("s3", marks=pytest.mark.stack)])
def test_build_verify_stream_roundtrip(dc, dest, tmp_path, request):
    url = (tmp_path / "shards").as_uri() if dest == "file" else request.getfixturevalue("s3_prefix")
    expected = {s.key: as_built(_members(s)) for s in read_layout("dresscode", dc, "train")}
    manifest = build_shards("dresscode", dc, "train", url, shard_size_bytes="40KB", workers=2)
    assert manifest.totals["samples"] == 12 and len(manifest.shards) >= 3, manifest.totals
    assert [k for s in manifest.shards for k in s.keys] == list(expected)  # layout order kept
    assert "pose_img.png" in manifest.members and "cloth_mask.png" not in manifest.members

    # Every member byte-identical to its source file, read back with plain webdataset.
    loaded = Manifest.load(url)
    got = {}
    for sample in wds.WebDataset([loaded.shard_url(s) for s in loaded.shards], shardshuffle=False):
        key = sample.pop("__key__")
        got[key] = {k: v for k, v in sample.items() if not k.startswith("__")}
    assert got == expected

    report = verify_shards(url)
    assert report.ok, report.summary()
    assert (report.shards, report.samples) == (len(manifest.shards), 12)

    # The stream yields every sample once per epoch; without augmentation the person tensor is the
    # decoded source JPEG in network range.
    cfg = StreamConfig(url, batch_size=3, image_size=SIZE, loader_workers=0, augment=False, shuffle_buffer=4)
    stream = ShardStream(cfg)
    assert stream.batches_per_epoch == 4
    assert_streams_sources(stream, "person", expected, "person.jpg")


def test_build_records_the_categories_option(dc, tmp_path):
    m = build_shards("dresscode", dc, "test", str(tmp_path), workers=1,
                     layout_options={"categories": "lower_body"})
    assert m.source["layout_options"] == {"categories": "lower_body"}
    assert [_index(k)[0] for s in m.shards for k in s.keys] == ["lower_body", "lower_body"]
    assert verify_shards(str(tmp_path)).ok
