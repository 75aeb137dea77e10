"""The synthetic VITON-HD dataset: exact layout, determinism, and labels/pose/cloth that agree
with the drawn pixels (what makes it a learnable, checkable try-on task)."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from shards.synthetic import MODALITY_DIRS, synthesize

SIZE = (128, 96)
N = 24

# BODY_25 joint -> LIP labels its pixel may carry. Person's left (L joints) is LIP 14/16/18.
ALLOWED = {
    0: {13}, 15: {13}, 16: {13}, 17: {13, 2}, 18: {13, 2},  # nose, eyes, ears
    1: {10, 5, 13},  # neck
    2: {5, 15}, 3: {5, 15}, 4: {5, 15},  # right shoulder / elbow / wrist (sleeve or skin)
    5: {5, 14}, 6: {5, 14}, 7: {5, 14},
    8: {9, 5}, 9: {9, 5}, 12: {9, 5},  # hips: trousers, or a long top over them
    10: {9, 17}, 11: {9, 17, 19}, 13: {9, 16}, 14: {9, 16, 18},  # knees, ankles
    19: {18}, 20: {18}, 21: {18}, 22: {19}, 23: {19}, 24: {19},  # feet on their own shoe
}


def _rgb(path: Path) -> np.ndarray:
    return cv2.cvtColor(cv2.imread(str(path), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("synthetic") / "viton_hd"
    return root, synthesize(root, n=N, size=SIZE, seed=7)


def _names(root: Path, split: str) -> list[str]:
    return [line.split()[0][:-4] for line in (root / f"{split}_pairs.txt").read_text().splitlines()]


def test_report_and_split_counts(data):
    root, report = data
    assert report["counts"] == {"train": 18, "test": 6}
    assert report["root"] == str(root) and report["size"] == list(SIZE)
    assert set(report["pairs_files"]) == {"train_pairs.txt", "test_pairs.txt"}
    files = [p for p in root.rglob("*") if p.is_file()]
    assert len(files) == report["files"]
    assert sum(p.stat().st_size for p in files if p.parent != root) == report["bytes"]


def test_exact_viton_hd_layout(data):
    root, _ = data
    expected = {"train_pairs.txt", "test_pairs.txt", "synthetic.json"}
    for split in ("train", "test"):
        for name in _names(root, split):
            expected |= {
                f"{split}/image/{name}.jpg", f"{split}/cloth/{name}.jpg", f"{split}/cloth-mask/{name}.jpg",
                f"{split}/image-parse-v3/{name}.png", f"{split}/image-parse-agnostic-v3.2/{name}.png",
                f"{split}/agnostic-v3.2/{name}.jpg", f"{split}/agnostic-mask/{name}_mask.png",
                f"{split}/openpose_json/{name}_keypoints.json", f"{split}/openpose_img/{name}_rendered.png",
            }
    found = {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}
    assert found == expected
    assert sorted(p.name for p in (root / "train").iterdir()) == sorted(MODALITY_DIRS)
    assert _names(root, "train")[0] == "00000_00" and _names(root, "test")[0] == "00018_00"


def test_pairs_files_paired_train_and_deranged_test(data):
    root, _ = data
    train = [line.split() for line in (root / "train_pairs.txt").read_text().splitlines()]
    assert all(p == c and p.endswith(".jpg") for p, c in train)
    test = [line.split() for line in (root / "test_pairs.txt").read_text().splitlines()]
    persons, clothes = [p for p, _ in test], [c for _, c in test]
    assert sorted(clothes) == sorted(persons), "unpaired clothes are the test persons' own clothes"
    assert all(p != c for p, c in test), "no test person is listed with its own cloth"


def test_deterministic_and_seed_dependent(tmp_path):
    a = synthesize(tmp_path / "a", n=6, size=(64, 48), seed=1)
    b = synthesize(tmp_path / "b", n=6, size=(64, 48), seed=1)
    c = synthesize(tmp_path / "c", n=6, size=(64, 48), seed=2)
    files = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*") if p.is_file())
    for rel in files:
        assert (tmp_path / "a" / rel).read_bytes() == (tmp_path / "b" / rel).read_bytes(), rel
    assert a["bytes"] == b["bytes"]
    person = Path("train/image/00000_00.jpg")
    assert (tmp_path / "a" / person).read_bytes() != (tmp_path / "c" / person).read_bytes()
    # Re-running into an earlier synthetic output replaces it; other folders are refused.
    synthesize(tmp_path / "a", n=3, size=(64, 48), seed=1)
    assert not (tmp_path / "a" / "train" / "image" / "00003_00.jpg").exists()
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "keep.txt").write_text("x")
    with pytest.raises(FileExistsError, match="other"):
        synthesize(tmp_path / "other", n=2)
    assert c["counts"] == a["counts"]


def test_parse_maps_are_palette_pngs_of_lip_labels(data):
    root, _ = data
    seen: set[int] = set()
    for name in _names(root, "train"):
        im = Image.open(root / "train" / "image-parse-v3" / f"{name}.png")
        assert im.mode == "P" and im.size == (SIZE[1], SIZE[0])
        seen |= set(np.unique(np.array(im)).tolist())
    assert seen <= set(range(20))
    assert {0, 2, 5, 9, 10, 13, 14, 15, 16, 17, 18, 19} <= seen


def test_keypoints_lie_on_their_body_parts(data):
    root, _ = data
    hits = total = 0
    for split in ("train", "test"):
        for name in _names(root, split):
            doc = json.loads((root / split / "openpose_json" / f"{name}_keypoints.json").read_text())
            kp = np.array(doc["people"][0]["pose_keypoints_2d"], np.float64).reshape(25, 3)
            parse = np.array(Image.open(root / split / "image-parse-v3" / f"{name}.png"))
            for j, allowed in ALLOWED.items():
                x, y, c = kp[j]
                if c == 0:
                    assert x == 0 and y == 0, f"{name}: undetected joint {j} must be (0, 0, 0)"
                    continue
                assert 0 < c <= 1
                xi, yi = int(round(x)), int(round(y))
                window = parse[max(0, yi - 1): yi + 2, max(0, xi - 1): xi + 2]
                total += 1
                hits += parse[yi, xi] in allowed
                assert set(window.ravel().tolist()) & allowed, f"{name}: joint {j} at ({x}, {y}) not on {allowed}"
    assert hits / total > 0.95, "almost every joint pixel carries its own part's label"


def test_left_is_the_persons_left(data):
    root, _ = data
    for name in _names(root, "train"):
        parse = np.array(Image.open(root / "train" / "image-parse-v3" / f"{name}.png"))
        cols = np.arange(parse.shape[1])[None, :]
        for left, right in ((14, 15), (16, 17), (18, 19)):
            n_left, n_right = (parse == left).sum(), (parse == right).sum()
            if left == 16 and not (n_left and n_right):
                continue  # full-length trousers hide both legs
            assert n_left and n_right, f"{name}: hands and shoes always show (LIP {left}, {right})"
            lx = (cols * (parse == left)).sum() / n_left
            rx = (cols * (parse == right)).sum() / n_right
            assert lx > rx, f"{name}: LIP {left} should be on the image's right of {right}"


def _garment_stats(root: Path, split: str, name: str) -> tuple[np.ndarray, np.ndarray, float, float]:
    kernel = np.ones((3, 3), np.uint8)
    person = _rgb(root / split / "image" / f"{name}.jpg").astype(np.float64)
    parse = np.array(Image.open(root / split / "image-parse-v3" / f"{name}.png"))
    cloth = _rgb(root / split / "cloth" / f"{name}.jpg").astype(np.float64)
    mask = cv2.imread(str(root / split / "cloth-mask" / f"{name}.jpg"), cv2.IMREAD_GRAYSCALE) >= 128
    worn = cv2.erode((parse == 5).astype(np.uint8), kernel).astype(bool)
    flat = cv2.erode(mask.astype(np.uint8), kernel).astype(bool)
    outside = ~cv2.dilate(mask.astype(np.uint8), kernel, iterations=2).astype(bool)
    assert cloth[outside].min() > 230, f"{name}: cloth background must be white"
    return person[worn].mean(0), cloth[flat].mean(0), person[worn].std(0).mean(), cloth[flat].std(0).mean()


def test_worn_garment_has_the_cloths_colour_and_pattern(data):
    """The try-on task is checkable: each person's garment matches its own cloth and no other."""
    root, _ = data
    stats = [_garment_stats(root, s, n) for s in ("train", "test") for n in _names(root, s)]
    worn = np.array([s[0] for s in stats])
    flat = np.array([s[1] for s in stats])
    dist = np.linalg.norm(worn[:, None] - flat[None], axis=-1)
    assert dist.diagonal().max() < 20, "mean garment colour = mean cloth colour (JPEG tolerance)"
    assert (dist.argmin(axis=1) == np.arange(len(stats))).mean() >= 0.9
    patterned = [(s[2] > 10, s[3] > 10) for s in stats]  # solid: std ~3, patterned: > 15
    assert all(a == b for a, b in patterned), "a patterned cloth is worn patterned, a solid one solid"
    assert any(a for a, _ in patterned) and not all(a for a, _ in patterned)


def test_agnostic_grays_the_upper_body_and_keeps_the_head(data):
    root, _ = data
    for name in _names(root, "test"):
        person = _rgb(root / "test" / "image" / f"{name}.jpg").astype(np.int64)
        agn = _rgb(root / "test" / "agnostic-v3.2" / f"{name}.jpg").astype(np.int64)
        parse = np.array(Image.open(root / "test" / "image-parse-v3" / f"{name}.png"))
        parse_agn = np.array(Image.open(root / "test" / "image-parse-agnostic-v3.2" / f"{name}.png"))
        mask = cv2.imread(str(root / "test" / "agnostic-mask" / f"{name}_mask.png"), cv2.IMREAD_GRAYSCALE)
        inner = cv2.erode((parse == 5).astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
        assert np.abs(agn[inner] - 128).mean() < 6
        assert (mask[parse == 5] == 255).all() and set(np.unique(mask).tolist()) <= {0, 255}
        face = cv2.erode((parse == 13).astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
        assert np.abs(agn[face] - person[face]).mean() < 6
        assert not np.isin(parse_agn, (5, 10, 14, 15)).any()
        np.testing.assert_array_equal(parse_agn[parse == 13], 13)
