"""Layout readers over the synthetic VITON-HD set and VITON / MPV copies re-arranged from it."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pytest

from shards.layouts import LAYOUTS, read_layout
from shards.layouts.common import safe_key, unsafe_key
from shards.sample import REQUIRED_MEMBERS, MissingModalityError
from shards.synthetic import synthesize
from vton_models.representation import keypoints_from_openpose, pose18

# BODY_25 index of each COCO-18 joint (COCO has no mid-hip; BODY_25's 8 is skipped).
BODY25_OF_COCO18 = [0, 1, 2, 3, 4, 5, 6, 7, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18]
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


def _coco18_json(hd_json: Path, dest: Path) -> None:
    """Old-OpenPose COCO-18 file ("pose_keypoints"), as VITON/CP-VTON and MPV ship them."""
    kp = np.array(json.loads(hd_json.read_text())["people"][0]["pose_keypoints_2d"]).reshape(25, 3)
    dest.parent.mkdir(parents=True, exist_ok=True)
    coco = kp[BODY25_OF_COCO18].reshape(-1).tolist()
    dest.write_text(json.dumps({"version": 1.0, "people": [{"pose_keypoints": coco}]}))


def _copy(src: Path, dest: Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dest)


@pytest.fixture(scope="module")
def viton(hd, tmp_path_factory) -> Path:
    """The synthetic set in CP-VTON's layout: person <id>_0 wears cloth <id>_1."""
    root = tmp_path_factory.mktemp("layouts") / "viton"
    for split in ("train", "test"):
        lines = []
        for person, cloth in _pairs(hd, split):
            p, c = _stem(person), _stem(cloth)
            s, d = hd / split, root / split
            _copy(s / "image" / person, d / "image" / f"{p}_0.jpg")
            _copy(s / "cloth" / person, d / "cloth" / f"{p}_1.jpg")
            _copy(s / "cloth-mask" / person, d / "cloth-mask" / f"{p}_1.jpg")
            _copy(s / "image-parse-v3" / f"{p}.png", d / "image-parse" / f"{p}_0.png")
            _coco18_json(s / "openpose_json" / f"{p}_keypoints.json", d / "pose" / f"{p}_0_keypoints.json")
            lines.append(f"{p}_0.jpg {c}_1.jpg\n")
        (root / f"{split}_pairs.txt").write_text("".join(lines))
    return root


def _mpv_name(i: int, kind: str) -> str:
    group = f"RE{i // 2:03d}D05M"
    return f"{group}/{group}-Q11@{i % 2 + 10}={kind}.jpg"


@pytest.fixture(scope="module")
def mpv(hd, tmp_path_factory) -> Path:
    """Synthetic persons 2k and 2k+1 as two poses of one cloth (MPV triplets), ids as in MPV."""
    root = tmp_path_factory.mktemp("layouts") / "mpv"
    lines = []
    for split in ("train", "test"):
        persons = [_stem(p) for p, _ in _pairs(hd, split)]
        for k in range(0, len(persons) - 1, 2):
            names = []
            for j, stem in enumerate(persons[k : k + 2]):
                i = int(stem[:5])
                rel = _mpv_name(i, "person_half_front")
                _copy(hd / split / "image" / f"{stem}.jpg", root / "all" / rel)
                _copy(hd / split / "image-parse-v3" / f"{stem}.png", root / "all_parsing" / f"{_stem(rel)}.png")
                _coco18_json(hd / split / "openpose_json" / f"{stem}_keypoints.json",
                             root / "all_person_clothes_keypoints" / f"{_stem(rel)}_keypoints.json")
                names.append(rel)
            cloth = _mpv_name(int(persons[k][:5]), "cloth_front")
            _copy(hd / split / "cloth" / f"{persons[k]}.jpg", root / "all" / cloth)
            _copy(hd / split / "cloth-mask" / f"{persons[k]}.jpg", root / "all" / f"{_stem(cloth)}_mask.jpg")
            lines.append(f"{names[0]}\t{names[1]}\t{cloth}\t{split}\n")
            lines.append(f"{names[1]}\t{names[0]}\t{cloth}\t{split}\n")  # persons recur across triplets
    (root / "all_poseA_poseB_clothes.txt").write_text("".join(lines))
    return root


def test_registry_and_unknown_layout():
    assert set(LAYOUTS) == {"viton_hd", "viton", "mpv"}
    with pytest.raises(ValueError, match=r"'dresscode'.*\['mpv', 'viton', 'viton_hd'\]"):
        read_layout("dresscode", Path("."), "train")


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
    assert len(samples) == 3
    for key, s in samples.items():
        person = _stem(key.removesuffix("_0"))
        assert s.paths["cloth.jpg"] == viton / "test" / "cloth" / f"{person}_1.jpg"
        assert s.paths["pose.json"] == viton / "test" / "pose" / f"{key}_keypoints.json"
        assert s.meta["pose_format"] == "coco18" and s.meta["cloth_id"] == f"{person}_1"
        assert s.meta["unpaired_cloth_id"] == f"{_stem(hd_pairs[person + '.jpg'])}_1"
        assert s.meta["unpaired_cloth_key"] == f"{_stem(hd_pairs[person + '.jpg'])}_0"
        # The COCO-18 file decodes to the same canonical joints as the BODY_25 original.
        coco = pose18(keypoints_from_openpose(json.loads(s.paths["pose.json"].read_text()), "coco18"), "coco18")
        hd_doc = json.loads((hd / "test" / "openpose_json" / f"{person}_keypoints.json").read_text())
        body = pose18(keypoints_from_openpose(hd_doc, "body25"), "body25")
        np.testing.assert_allclose(coco[:, :2], body[:, :2], atol=1e-3)
    train = list(read_layout("viton", viton, "train"))
    assert len(train) == 9 and all(s.meta["unpaired_cloth_id"] is None for s in train)


def test_mpv_yields_each_person_once_with_its_pose_partners(mpv):
    it = read_layout("mpv", mpv, "train")
    samples = {s.key: s for s in it}
    assert len(samples) == 8 and it.stats.yielded == 8  # 9 train persons -> 4 triplets of 2 poses
    for key, s in samples.items():
        assert "." not in key and "/" not in key
        rel = unsafe_key(key)
        assert s.paths["person.jpg"] == mpv / "all" / f"{rel}.jpg"
        assert s.paths["parse.png"] == mpv / "all_parsing" / f"{rel}.png"
        assert s.paths["pose.json"] == mpv / "all_person_clothes_keypoints" / f"{rel}_keypoints.json"
        assert s.paths["cloth_mask.png"] == mpv / "all" / f"{s.meta['cloth_id']}_mask.jpg"
        assert s.meta["pose_format"] == "coco18" and s.meta["split"] == "train"
        (partner,) = s.meta["same_cloth_keys"]
        assert samples[partner].meta["same_cloth_keys"] == [key]
        assert samples[partner].meta["cloth_id"] == s.meta["cloth_id"]
    assert len(list(read_layout("mpv", mpv, "test"))) == 2
    with pytest.raises(ValueError, match=r"no triplets for split 'val'.*\['test', 'train'\]"):
        read_layout("mpv", mpv, "val")


def test_mpv_missing_mask_and_conflicting_cloth(mpv, tmp_path):
    broken = tmp_path / "mpv"
    shutil.copytree(mpv, broken)
    mask = next((broken / "all").rglob("*=cloth_front_mask.jpg"))
    mask.unlink()
    with pytest.raises(MissingModalityError, match=rf"cloth_mask\.png: expected {mask}"):
        list(read_layout("mpv", broken, "train"))
    it = read_layout("mpv", broken, "train", strict=False)
    assert len(list(it)) == 6 and it.stats.skipped_count == 2

    lines = (mpv / "all_poseA_poseB_clothes.txt").read_text().splitlines()
    a, b, _, split = lines[0].split("\t")
    lines.append(f"{a}\t{b}\tRE999D05M/other=cloth_front.jpg\t{split}")
    (broken / "all_poseA_poseB_clothes.txt").write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError, match=rf"all_poseA_poseB_clothes\.txt:{len(lines)}: person .* line 1"):
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
