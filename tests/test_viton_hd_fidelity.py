"""What the ``viton_hd`` representation feeds the networks equals what the official VITON-HD loader
computes for the same sample.

The reference below is written from the official ``datasets.py`` (shadow2496/VITON-HD,
``VITONDataset.__getitem__``, ``get_parse_agnostic``, ``get_img_agnostic``) at the official size,
1024x768, where our radius scaling (``width / 768``) is 1. It reads the dataset's files directly
(not our shards), so the layout reader, the shard members, the decoder and the builder are all
checked against it.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from shards.decode import decode_sample
from shards.layouts import read_layout
from shards.synthetic import synthesize
from shards.writer import serialise_meta
from vton_models.families.viton_hd.inputs import pose_image_source, viton_hd_representation

SIZE = (1024, 768)
GRAY = (128, 128, 128)
#: The official 13 groups, as its ``labels`` dict lists them (group -> LIP labels).
OFFICIAL_GROUPS = ([0, 10], [1, 2], [4, 13], [5, 6, 7], [9, 12], [14], [15], [16], [17], [18], [19], [8], [3, 11])


def _to_tensor_normalised(img: Image.Image) -> np.ndarray:
    """torchvision ToTensor + Normalize((0.5,) * 3, (0.5,) * 3), as the official transform."""
    x = np.asarray(img.convert("RGB"), dtype=np.float32).transpose(2, 0, 1) / np.float32(255.0)
    return (x - np.float32(0.5)) / np.float32(0.5)


def _official_parse_agnostic(parse: Image.Image, pose: np.ndarray) -> np.ndarray:
    labels = np.array(parse)
    agnostic = parse.copy()
    r = 10
    for label, chain in ((14, [2, 5, 6, 7]), (15, [5, 2, 3, 4])):
        arm = Image.new("L", parse.size, "black")
        draw = ImageDraw.Draw(arm)
        previous = chain[0]
        for i in chain[1:]:
            if not pose[previous].any() or not pose[i].any():
                continue
            draw.line([tuple(pose[j]) for j in (previous, i)], "white", width=r * 10)
            x, y = pose[i]
            radius = r * 4 if i == chain[-1] else r * 15
            draw.ellipse((x - radius, y - radius, x + radius, y + radius), "white", "white")
            previous = i
        removed = (np.array(arm) / 255) * (labels == label)
        agnostic.paste(0, None, Image.fromarray(np.uint8(removed * 255), "L"))
    for region in (np.isin(labels, (5, 6, 7)), labels == 10):
        agnostic.paste(0, None, Image.fromarray(np.uint8(region * 255), "L"))
    return np.array(agnostic)


def _official_img_agnostic(img: Image.Image, parse: Image.Image, pose: np.ndarray) -> Image.Image:
    labels = np.array(parse)
    pose = pose.copy()
    r = 20
    out = img.copy()
    draw = ImageDraw.Draw(out)
    shoulders = np.linalg.norm(pose[5] - pose[2])
    hips = np.linalg.norm(pose[12] - pose[9])
    centre = (pose[9] + pose[12]) / 2
    pose[9] = centre + (pose[9] - centre) / hips * shoulders
    pose[12] = centre + (pose[12] - centre) / hips * shoulders

    def disk(i: int, rx: float, ry: float) -> None:
        x, y = pose[i]
        draw.ellipse((x - rx, y - ry, x + rx, y + ry), GRAY, GRAY)

    draw.line([tuple(pose[i]) for i in (2, 5)], GRAY, width=r * 10)
    for i in (2, 5):
        disk(i, r * 5, r * 5)
    for i in (3, 4, 6, 7):
        if not pose[i - 1].any() or not pose[i].any():
            continue
        draw.line([tuple(pose[j]) for j in (i - 1, i)], GRAY, width=r * 10)
        disk(i, r * 5, r * 5)
    for i in (9, 12):
        disk(i, r * 3, r * 6)
    draw.line([tuple(pose[i]) for i in (2, 9)], GRAY, width=r * 6)
    draw.line([tuple(pose[i]) for i in (5, 12)], GRAY, width=r * 6)
    draw.line([tuple(pose[i]) for i in (9, 12)], GRAY, width=r * 12)
    draw.polygon([tuple(pose[i]) for i in (2, 5, 12, 9)], GRAY, GRAY)
    x, y = pose[1]
    draw.rectangle((x - r * 7, y - r * 7, x + r * 7, y + r * 7), GRAY, GRAY)
    for keep in (np.isin(labels, (4, 13)), np.isin(labels, (9, 12, 16, 17, 18, 19))):
        out.paste(img, None, Image.fromarray(np.uint8(keep * 255), "L"))
    return out


def official_item(split_dir: Path, img_name: str, c_name: str) -> dict[str, np.ndarray]:
    """The official ``__getitem__`` at 1024x768 (its Resize(768) calls are then identities)."""
    stem = img_name[: -len(".jpg")]
    cloth = Image.open(split_dir / "cloth" / c_name).convert("RGB")
    cloth_mask = (np.array(Image.open(split_dir / "cloth-mask" / c_name)) >= 128).astype(np.float32)[None]
    pose_rgb = Image.open(split_dir / "openpose_img" / f"{stem}_rendered.png")
    doc = json.loads((split_dir / "openpose_json" / f"{stem}_keypoints.json").read_text())
    pose = np.array(doc["people"][0]["pose_keypoints_2d"]).reshape(-1, 3)[:, :2]
    parse = Image.open(split_dir / "image-parse-v3" / f"{stem}.png")
    parse_agnostic = _official_parse_agnostic(parse, pose)
    onehot20 = np.eye(20, dtype=np.float32)[parse_agnostic].transpose(2, 0, 1)
    parse_agnostic_13 = np.stack([onehot20[group].sum(0) for group in OFFICIAL_GROUPS])
    img = Image.open(split_dir / "image" / img_name)
    return {
        "img": _to_tensor_normalised(img),
        "img_agnostic": _to_tensor_normalised(_official_img_agnostic(img, parse, pose)),
        "parse_agnostic": parse_agnostic_13,
        "pose": _to_tensor_normalised(pose_rgb),
        "cloth": _to_tensor_normalised(cloth),
        "cloth_mask": cloth_mask,
    }


@pytest.fixture(scope="module")
def full_size(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("viton_hd_1024")
    synthesize(root, n=2, size=SIZE, seed=3, split_test_fraction=0.0)
    return root


def test_viton_hd_inputs_equal_the_official_loader_at_1024x768(full_size):
    sources = list(read_layout("viton_hd", full_size, "train"))
    assert len(sources) == 2
    for source in sources:
        assert "pose_img.png" in source.paths, "the reader must carry openpose_img/*_rendered.png"
        members = {m: p.read_bytes() for m, p in source.paths.items()}
        members["meta.json"] = serialise_meta(source.meta)
        ours = viton_hd_representation(decode_sample(members, source.key))
        person = Path(source.paths["person.jpg"]).name
        official = official_item(full_size / "train", person, person)  # train pairs are paired
        pairs = {"img": "person", "img_agnostic": "img_agnostic", "parse_agnostic": "parse_agnostic",
                 "pose": "pose_img", "cloth": "cloth", "cloth_mask": "cloth_mask"}
        for theirs, mine in pairs.items():
            assert ours[mine].shape == official[theirs].shape, (source.key, mine)
            np.testing.assert_allclose(ours[mine], official[theirs], rtol=0, atol=1e-6,
                                       err_msg=f"sample {source.key}: {mine} differs from the official {theirs}")
        assert (official["img_agnostic"] != official["img"]).any(), "the agnostic must hide something"


def test_without_rendered_pose_we_draw_one_and_say_so(full_size):
    source = next(iter(read_layout("viton_hd", full_size, "train")))
    members = {m: p.read_bytes() for m, p in source.paths.items() if m != "pose_img.png"}
    members["meta.json"] = serialise_meta(source.meta)
    drawn = viton_hd_representation(decode_sample(members, source.key))["pose_img"]
    assert drawn.shape == (3, *SIZE) and drawn.max() > -1.0, "a skeleton must be drawn"
    assert pose_image_source({"pose_img.png": 4, "person.jpg": 4}, 4) == {"vton.data.pose_img": "dataset"}
    assert pose_image_source({"person.jpg": 4}, 4) == {"vton.data.pose_img": "drawn"}
    assert pose_image_source({"pose_img.png": 1}, 4)["vton.data.pose_img"].startswith("mixed (1 of 4")
    assert pose_image_source(None, 4)["vton.data.pose_img"].startswith("drawn (manifest v1")
