"""The ``cpvton`` representation equals what CP-VTON's public ``cp_dataset.py`` computes.

The reference below follows ``cp_dataset.py`` step by step with the libraries it uses (PIL for the
parse map, the shape resizes and the pose squares, torchvision's ``ToTensor`` + ``Normalize``, the
pose JSON's ``pose_keypoints`` read as it reads them), at the official 256x192. It reads the parse,
pose and cloth-mask files itself; person and cloth enter as the decoded pixels, since JPEG decoders
are not under test.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

import vton_models  # noqa: F401  - first, so torchvision imports on CPU-only torch
import torchvision.transforms as transforms
from PIL import Image, ImageDraw

from shards.decode import decode_sample
from shards.layouts import read_layout
from shards.synthetic import synthesize_layout
from shards.writer import serialise_meta
from vton_models.representation.cpvton import (CPVTON, cpvton_representation, cpvton_shape, pose_squares,
                                               torchvision_normalize)

H, W = 256, 192


def _official(person: np.ndarray, cloth: np.ndarray, files: dict[str, str], radius: int = 5) -> dict[str, torch.Tensor]:
    """cp_dataset.py's __getitem__ (GMM stage), written out with its own libraries."""
    transform = transforms.Compose([transforms.ToTensor(), transforms.Normalize((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))])
    c = transform(Image.fromarray(cloth))
    cm = torch.from_numpy((np.array(Image.open(files["cloth_mask.png"])) >= 128).astype(np.float32)).unsqueeze(0)
    im = transform(Image.fromarray(person))
    parse_array = np.array(Image.open(files["parse.png"]))
    parse_shape = (parse_array > 0).astype(np.float32)
    parse_head = sum((parse_array == k).astype(np.float32) for k in (1, 2, 4, 13))
    parse_cloth = sum((parse_array == k).astype(np.float32) for k in (5, 6, 7))
    shape_img = Image.fromarray((parse_shape * 255).astype(np.uint8))
    shape_img = shape_img.resize((W // 16, H // 16), Image.BILINEAR).resize((W, H), Image.BILINEAR)
    shape = transforms.Normalize((0.5,), (0.5,))(transforms.ToTensor()(shape_img))
    phead, pcm = torch.from_numpy(parse_head), torch.from_numpy(parse_cloth)
    im_c = im * pcm + (1 - pcm)
    im_h = im * phead - (1 - phead)
    pose_data = np.array(json.loads(Path(files["pose.json"]).read_text())["people"][0]["pose_keypoints"]).reshape((-1, 3))
    pose_map = torch.zeros(pose_data.shape[0], H, W)
    for i in range(pose_data.shape[0]):
        one_map = Image.new("L", (W, H))
        x, y = pose_data[i, 0], pose_data[i, 1]
        if x > 1 and y > 1:
            ImageDraw.Draw(one_map).rectangle((x - radius, y - radius, x + radius, y + radius), "white", "white")
        pose_map[i] = transforms.Normalize((0.5,), (0.5,))(transforms.ToTensor()(one_map))[0]
    return {"agnostic": torch.cat([shape, im_h, pose_map], 0), "cloth": c, "cloth_mask": cm, "person": im,
            "parse_cloth_rgb": im_c, "pcm": pcm.unsqueeze(0)}


@pytest.fixture(scope="module")
def viton(tmp_path_factory):
    root = tmp_path_factory.mktemp("viton")
    synthesize_layout("viton", root, n=6, size=(H, W), seed=4)
    out = []
    for s in read_layout("viton", root, "train"):
        members = {m: Path(p).read_bytes() for m, p in s.paths.items()}
        members["meta.json"] = serialise_meta(s.meta)
        out.append((decode_sample(members, s.key), {m: str(p) for m, p in s.paths.items()}))
    assert out and all(sample.pose_format == "coco18" for sample, _ in out)
    return out


def test_every_field_equals_cp_dataset_py_bit_for_bit(viton):
    for sample, files in viton:
        ours = cpvton_representation(sample)
        reference = _official(sample.person, sample.cloth, files)
        for name, expected in reference.items():
            assert ours[name].shape == tuple(expected.shape), name
            assert np.array_equal(ours[name], expected.numpy()), f"{sample.key}: {name} differs"
        assert ours["agnostic"].shape[0] == 22
        assert np.array_equal(ours["parse"], np.array(Image.open(files["parse.png"])).astype(np.int64))


def test_pose_squares_and_shape_by_hand():
    pose = np.array([[10.0, 20.0, 0.9], [1.0, 30.0, 0.9], [40.0, 5.0, 0.0]])
    squares = pose_squares(pose, (32, 48), radius=2)
    on = np.argwhere(squares[0] == 1)
    assert on.min(0).tolist() == [18, 8] and on.max(0).tolist() == [22, 12]  # rows 18..22, columns 8..12
    assert (squares[1] == -1).all()  # x = 1 is not > 1: not drawn, as in CP-VTON
    assert (squares[2] == 1).sum() == 25  # confidence 0 is still drawn: CP-VTON ignores it
    parse = np.zeros((32, 48), np.uint8)
    assert (cpvton_shape(parse) == -1).all()
    parse[:] = 3
    assert (cpvton_shape(parse) == 1).all()
    with pytest.raises(ValueError, match="smaller than the 16x shrink factor"):
        cpvton_shape(np.zeros((8, 48), np.uint8))
    assert torchvision_normalize(np.array([[0, 255]], np.uint8)).tolist() == [[[-1.0, 1.0]]]


def test_radius_scales_with_width_and_the_representation_is_named(viton):
    sample, _ = viton[0]
    from shards.transforms import resize_sample

    small = cpvton_representation(resize_sample(sample, (64, 48)))
    assert small["agnostic"].shape == (22, 64, 48)
    drawn = (small["agnostic"][4:] == 1).sum(axis=(1, 2))
    assert 0 < drawn.max() <= 16  # r = 5 * 48 / 192 = 1.25: a square 2.5 px wide covers at most 4x4 pixels
    assert CPVTON.name == "cpvton" and "cloth_mask.png" in CPVTON.reads


def test_viton_hd_data_reaches_cpvton_through_the_coco18_order(tmp_path):
    from plugins.data import decoded_samples
    from shards.synthetic import synthesize

    synthesize(tmp_path, n=3, size=(H, W), seed=1, split_test_fraction=0.0)
    sample = decoded_samples(tmp_path)[0]
    assert sample.pose_format == "body25"
    squares = cpvton_representation(sample)["agnostic"][4:]
    body25_of_coco18 = [0, 1, 2, 3, 4, 5, 6, 7, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18]  # written out by hand
    checked = 0
    for coco, body25 in enumerate(body25_of_coco18):
        x, y, _ = sample.pose[body25]
        if x > 1 and y > 1:
            assert squares[coco, int(y), int(x)] == 1, (coco, body25)
            checked += 1
    assert checked >= 12
