"""Layout readers over the synthetic VITON-HD, VITON (CP-VTON) and MPV sets, each in its own on-disk layout."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pytest

from shards.layouts import LAYOUTS, read_layout
from shards.layouts.common import UnsafePathError, safe_key, unsafe_key
from shards.sample import REQUIRED_MEMBERS, MissingModalityError
from shards.synthetic import synthesize
from shards.synthetic_mpv import synthesize as synthesize_mpv
from shards.synthetic_viton import synthesize as synthesize_viton
from vton_models.representation import keypoints_from_openpose, pose18

SIZE = (64, 48)


@pytest.fixture(scope="module")
def hd(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("layouts") / "viton_hd"
    synthesize(root, n=12, size=SIZE, seed=3)  # 9 train, 3 test
    return root


def _pairs(root: Path, split: str) -> list[tuple[str, str]]:
    return [tuple(line.split()) for line in (root / f"{split}_pairs.txt").read_text().splitlines()]


def _stem(name: str) -> str:
    return name.rsplit(".", 1)[0]


@pytest.fixture(scope="module")
def viton(tmp_path_factory) -> Path:
    """The synthetic set in CP-VTON's layout (person <id>_0 wears cloth <id>_1): the same persons,
    split and unpaired list as ``hd`` (same n, size and seed), poses written as COCO-18."""
    root = tmp_path_factory.mktemp("layouts") / "viton"
    synthesize_viton(root, n=12, size=SIZE, seed=3)  # 9 train, 3 test
    return root


@pytest.fixture(scope="module")
def mpv(tmp_path_factory) -> Path:
    """Synthetic MPV: 6 identities (4 train, 2 test), each one person in 2 or 3 poses with one cloth."""
    root = tmp_path_factory.mktemp("layouts") / "mpv"
    synthesize_mpv(root, n=6, size=SIZE, seed=3)
    return root


def _identities(root: Path, split: str) -> list[dict]:
    card = json.loads((root / "synthetic.json").read_text())
    return [c for c in card["identities"] if c["split"] == split]


def test_registry_and_unknown_layout():
    assert set(LAYOUTS) == {"viton_hd", "viton", "mpv", "mpv_triplets", "dresscode"}
    with pytest.raises(ValueError, match=r"'deepfashion'.*\['dresscode', 'mpv', 'mpv_triplets', 'viton', 'viton_hd'\]"):
        read_layout("deepfashion", Path("."), "train")
    with pytest.raises(ValueError, match=r"layout 'viton_hd' has no option 'subset'; its options: none"):
        read_layout("viton_hd", Path("."), "train", options={"subset": "x.txt"})


@pytest.mark.parametrize("split,count", [("train", 9), ("test", 3)])
def test_viton_hd_reads_the_synthetic_set(hd, split, count):
    it = read_layout("viton_hd", hd, split)
    samples = list(it)
    assert len(samples) == count and it.stats.yielded == count and it.stats.skipped_count == 0
    pairs = dict(_pairs(hd, split))
    keys = {s.key for s in samples}
    for s in samples:
        person = f"{s.key}.jpg"
        assert s.key in {_stem(p) for p in pairs}
        assert s.missing_required() == []
        assert all(p.is_file() for p in s.paths.values())
        assert s.paths["person.jpg"] == hd / split / "image" / person
        assert s.paths["cloth.jpg"] == hd / split / "cloth" / person  # the worn cloth, same name
        assert s.paths["cloth_mask.png"] == hd / split / "cloth-mask" / person
        assert s.paths["parse.png"] == hd / split / "image-parse-v3" / f"{s.key}.png"
        assert s.paths["pose.json"] == hd / split / "openpose_json" / f"{s.key}_keypoints.json"
        assert s.paths["agnostic.jpg"] == hd / split / "agnostic-v3.2" / person
        assert s.paths["parse_agnostic.png"] == hd / split / "image-parse-agnostic-v3.2" / f"{s.key}.png"
        assert "densepose.png" not in s.paths
        m = s.meta
        assert (m["layout"], m["split"], m["pose_format"]) == ("viton_hd", split, "body25")
        assert m["original_size"] == list(SIZE)
        assert (m["person_id"], m["cloth_id"]) == (s.key, s.key)
        assert m["pair_id"] == f"{person} {pairs[person]}"
        if split == "train":
            assert m["unpaired_cloth_id"] is None and m["unpaired_cloth_key"] is None
        else:
            assert m["unpaired_cloth_id"] == _stem(pairs[person]) != s.key
            assert m["unpaired_cloth_key"] in keys


def test_viton_hd_accepts_both_folder_spellings(hd, tmp_path):
    alt = tmp_path / "alt"
    shutil.copytree(hd, alt)
    for split in ("train", "test"):
        (alt / split / "image-parse-v3").rename(alt / split / "image-parse")
        (alt / split / "openpose_json").rename(alt / split / "openpose-json")
    a = {s.key: s for s in read_layout("viton_hd", hd, "test")}
    b = {s.key: s for s in read_layout("viton_hd", alt, "test")}
    assert a.keys() == b.keys()
    for key, s in b.items():
        assert s.paths["parse.png"] == alt / "test" / "image-parse" / f"{key}.png"
        assert s.paths["pose.json"] == alt / "test" / "openpose-json" / f"{key}_keypoints.json"
        assert s.paths["parse.png"].read_bytes() == a[key].paths["parse.png"].read_bytes()
        assert s.meta == a[key].meta


def test_missing_modality_strict_names_sample_and_path(hd, tmp_path, caplog):
    broken = tmp_path / "broken"
    shutil.copytree(hd, broken)
    victim = _stem(_pairs(hd, "train")[4][0])
    missing = broken / "train" / "image-parse-v3" / f"{victim}.png"
    missing.unlink()
    with pytest.raises(MissingModalityError, match=rf"'{victim}'.*parse\.png.*{missing}"):
        list(read_layout("viton_hd", broken, "train"))

    with caplog.at_level(logging.WARNING, logger="shards.layouts"):
        it = read_layout("viton_hd", broken, "train", strict=False)
        keys = [s.key for s in it]
    assert len(keys) == 8 and victim not in keys
    assert it.stats.skipped == [(victim, "parse.png", str(missing))]
    assert any(victim in r.getMessage() and str(missing) in r.getMessage() for r in caplog.records)


def test_pairs_line_leaving_the_root_fails_or_is_skipped_and_counted(hd, tmp_path):
    bad = tmp_path / "escape"
    shutil.copytree(hd, bad)
    lines = (bad / "train_pairs.txt").read_text().splitlines()
    (bad / "train_pairs.txt").write_text("\n".join([*lines, "../../../etc/passwd 00000_00.jpg"]) + "\n")
    where = f"{bad / 'train_pairs.txt'}:{len(lines) + 1}"
    with pytest.raises(UnsafePathError, match=rf"train_pairs\.txt:{len(lines) + 1}: '\.\./\.\./\.\./etc/passwd' leaves"):
        list(read_layout("viton_hd", bad, "train"))
    lenient = read_layout("viton_hd", bad, "train", strict=False)
    assert len(list(lenient)) == len(lines)
    assert [(member, w) for _, member, w in lenient.stats.skipped] == [("pairs line", where)]


def test_pairs_file_errors_name_the_file(hd, tmp_path):
    with pytest.raises(FileNotFoundError, match="val_pairs.txt"):
        read_layout("viton_hd", hd, "val")
    bad = tmp_path / "bad"
    shutil.copytree(hd, bad)
    (bad / "train_pairs.txt").write_text("00000_00.jpg 00000_00.jpg\n00001_00.jpg\n")
    with pytest.raises(ValueError, match=r"train_pairs\.txt:2: expected 2 fields"):
        read_layout("viton_hd", bad, "train")
    (bad / "train_pairs.txt").write_text("00000_00.jpg 00000_00.jpg\n\n00000_00.jpg 00001_00.jpg\n")
    with pytest.raises(ValueError, match=r"train_pairs\.txt:3: person already listed at line 1"):
        list(read_layout("viton_hd", bad, "train"))


def test_viton_reads_cp_vton_layout_with_coco18_pose(hd, viton):
    samples = {s.key: s for s in read_layout("viton", viton, "test")}
    hd_pairs = dict(_pairs(hd, "test"))
    assert sorted(samples) == ["000009_0", "000010_0", "000011_0"]
    for key, s in samples.items():
        ident = key.removesuffix("_0")
        hd_name = f"{int(ident):05d}_00"  # the same synthetic person in the VITON-HD set
        assert s.paths["person.jpg"] == viton / "test" / "image" / f"{ident}_0.jpg"
        assert s.paths["cloth.jpg"] == viton / "test" / "cloth" / f"{ident}_1.jpg"
        assert s.paths["cloth_mask.png"] == viton / "test" / "cloth-mask" / f"{ident}_1.jpg"
        assert s.paths["parse.png"] == viton / "test" / "image-parse" / f"{key}.png"
        assert s.paths["pose.json"] == viton / "test" / "pose" / f"{key}_keypoints.json"
        assert s.meta["pose_format"] == "coco18" and s.meta["cloth_id"] == f"{ident}_1"
        other = int(_stem(hd_pairs[f"{hd_name}.jpg"])[:5])  # the same derangement as VITON-HD's test list
        assert s.meta["unpaired_cloth_id"] == f"{other:06d}_1" != s.meta["cloth_id"]
        assert s.meta["unpaired_cloth_key"] == f"{other:06d}_0" in samples
        for member, hd_rel in (("person.jpg", f"image/{hd_name}.jpg"), ("cloth.jpg", f"cloth/{hd_name}.jpg"),
                               ("cloth_mask.png", f"cloth-mask/{hd_name}.jpg"),
                               ("parse.png", f"image-parse-v3/{hd_name}.png")):
            assert s.paths[member].read_bytes() == (hd / "test" / hd_rel).read_bytes(), member
        # The COCO-18 file decodes to the same canonical joints as the BODY_25 original.
        doc = json.loads(s.paths["pose.json"].read_text())
        assert len(doc["people"][0]["pose_keypoints"]) == 54
        coco = pose18(keypoints_from_openpose(doc, "coco18"), "coco18")
        hd_doc = json.loads((hd / "test" / "openpose_json" / f"{hd_name}_keypoints.json").read_text())
        body = pose18(keypoints_from_openpose(hd_doc, "body25"), "body25")
        np.testing.assert_allclose(coco[:, :2], body[:, :2], atol=1e-3)
        others = [i for i in range(18) if i != 8]  # COCO-18's mid hip confidence is derived (min of the hips)
        np.testing.assert_allclose(coco[others, 2], body[others, 2], atol=1e-4)
    train = list(read_layout("viton", viton, "train"))
    assert len(train) == 9 and all(s.meta["unpaired_cloth_id"] is None for s in train)


def test_mpv_yields_each_person_once_with_its_pose_partners(mpv):
    assert not (mpv / "all_poseA_poseB_clothes.txt").exists()  # the later revision's name is read
    it = read_layout("mpv", mpv, "train")
    samples = {s.key: s for s in it}
    train = _identities(mpv, "train")
    assert [len(c["photos"]) for c in train] == [2, 2, 3, 2]
    assert len(samples) == 9 and it.stats.yielded == 9  # each person photo once, though in 2-4 triplets
    for c in train:
        keys = {safe_key(_stem(p)) for p in c["photos"]}
        for key in keys:
            s = samples[key]
            assert "." not in key and "/" not in key
            rel = unsafe_key(key)
            assert s.paths["person.jpg"] == mpv / "all" / f"{rel}.jpg"
            assert s.paths["parse.png"] == mpv / "all_parsing" / f"{rel}.png"
            assert s.paths["pose.json"] == mpv / "all_person_clothes_keypoints" / f"{rel}_keypoints.json"
            assert s.paths["cloth.jpg"] == mpv / "all" / c["cloth"]
            assert s.paths["cloth_mask.png"] == mpv / "all" / f"{s.meta['cloth_id']}_mask.jpg"
            assert s.meta["pose_format"] == "coco18" and s.meta["split"] == "train"
            assert s.meta["cloth_id"] == _stem(c["cloth"]) and s.meta["person_id"] == rel
            assert s.meta["same_cloth_keys"] == sorted(keys - {key})
    assert len(list(read_layout("mpv", mpv, "test"))) == 5
    with pytest.raises(ValueError, match=r"no triplets for split 'val'.*\['test', 'train'\]"):
        read_layout("mpv", mpv, "val")


def test_mpv_cloth_mask_is_optional_and_conflicting_cloth_fails(mpv, tmp_path):
    broken = tmp_path / "mpv"
    shutil.copytree(mpv, broken)
    cloth = _identities(mpv, "train")[2]["cloth"]
    (broken / "all" / f"{_stem(cloth)}_mask.jpg").unlink()
    samples = list(read_layout("mpv", broken, "train"))  # strict: a missing mask is not an error
    without = {s.key for s in samples if "cloth_mask.png" not in s.paths}
    assert len(samples) == 9 and len(without) == 3
    assert all(s.meta["cloth_id"] == _stem(cloth) for s in samples if s.key in without)

    triplets = broken / "all_poseA_poseB_clothes_0607.txt"
    lines = triplets.read_text().splitlines()
    a, b, _, split = lines[0].split("\t")
    lines.append(f"{a}\t{b}\tRE99999D05M/other=cloth_front.jpg\t{split}")
    triplets.write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError, match=rf"all_poseA_poseB_clothes_0607\.txt:{len(lines)}: person .* line 1"):
        read_layout("mpv", broken, "train")


def test_safe_keys_are_tar_safe_injective_and_reversible():
    names = ["00000_00", "RE321D05M/RE321D05M-Q11@10=person_half_front", "a.b", "a~2Eb", "../x", "a/b", "a_b", "é"]
    keys = [safe_key(n) for n in names]
    assert keys[0] == "00000_00"
    assert keys[1] == "RE321D05M~2FRE321D05M-Q11~4010~3Dperson_half_front"
    assert len(set(keys)) == len(keys)
    for name, key in zip(names, keys):
        assert "." not in key and "/" not in key and unsafe_key(key) == name
    with pytest.raises(ValueError):
        safe_key("")


def test_required_members_cover_the_contract(hd):
    sample = next(iter(read_layout("viton_hd", hd, "train")))
    assert set(REQUIRED_MEMBERS) - {"meta.json"} <= set(sample.paths)
