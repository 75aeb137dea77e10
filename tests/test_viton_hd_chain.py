"""VITON-HD's try-on chain (``viton_hd.tryon``): Seg -> GMM -> ALIAS on the *new* garment, in the
order of operations of the official ``test.py``, and a predicted parse that follows the garment."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from plugins.data import decoded_samples
from shards.collate import collate
from shards.synthetic import synthesize
from vton_models.families.viton_hd.chain import blur_at, gaussian_blur
from vton_models.recipe import RecipeContext
from vton_models.registry import get_recipe, get_representation

SIZE = (64, 64)  # the GMM's smallest input
TINY = {"seg": {"ngf": 8, "work_size": None}, "gmm": {"ngf": 8, "work_size": None},
        "alias": {"ngf": 4, "norm_hidden": 8, "num_upsampling_layers": "normal"}}
#: test.py's 13 -> 7 grouping, written out as it lists it.
OFFICIAL_7 = {0: [0], 1: [2, 4, 7, 8, 9, 10, 11], 2: [3], 3: [1], 4: [5], 5: [6], 6: [12]}


def _chain(seg_options: dict | None = None):
    options = {**TINY, "seg": {**TINY["seg"], **(seg_options or {})}}
    return get_recipe("viton_hd.tryon")(RecipeContext(image_size=SIZE, model={"stage_options": options}))


def _batch(samples) -> dict:
    representation = get_representation("viton_hd")
    return collate([representation(s) for s in samples], [s.key for s in samples])


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("chain")
    synthesize(root, n=160, size=SIZE, seed=5, split_test_fraction=0.0)
    sleeves = {c["id"]: c["garment"]["sleeve"] for c in json.loads((root / "synthetic.json").read_text())["samples"]}
    return {"root": root, "samples": decoded_samples(root), "sleeves": sleeves}


def _tgm_kernel(size: int, sigma: float) -> torch.Tensor:
    """torchgeometry's get_gaussian_kernel2d, written out: 1-D exp(-(x - size // 2)^2 / 2 sigma^2),
    normalised, outer product."""
    g = torch.tensor([math.exp(-((x - size // 2) ** 2) / float(2 * sigma ** 2)) for x in range(size)])
    g = g / g.sum()
    return torch.outer(g, g)


def test_blur_is_torchgeometrys_at_the_official_size():
    x = torch.rand(2, 13, 40, 32)
    kernel = _tgm_kernel(15, 3.0).expand(13, 1, 15, 15)
    torch.testing.assert_close(gaussian_blur(x, 15, 3.0), F.conv2d(x, kernel, padding=7, groups=13))
    assert blur_at(768) == (15, 3.0) and blur_at(384) == (9, 1.5) and blur_at(48) == (1, 0.1875)


def test_every_intermediate_follows_test_py_on_fixed_random_weights(data):
    torch.manual_seed(0)
    chain = _chain()
    nets = {k: v.eval() for k, v in chain.build_networks().items()}
    batch = _batch(data["samples"][:3])
    x = chain.inputs(batch)
    with torch.no_grad():
        steps = chain.run(nets, x)
        # Part 1, as test.py orders it (the seg stage runs at the image size here: work_size null).
        parse_pred_down = nets["seg"](x["seg_input"])
        up = F.interpolate(parse_pred_down, size=SIZE, mode="bilinear")
        k, sigma = blur_at(SIZE[1])
        blurred = F.conv2d(up, _tgm_kernel(k, sigma).expand(13, 1, k, k), padding=k // 2, groups=13)
        parse_pred = blurred.argmax(dim=1)[:, None]
        parse_old = torch.zeros(3, 13, *SIZE).scatter_(1, parse_pred, 1.0)
        parse = torch.zeros(3, 7, *SIZE)
        for j, labels in OFFICIAL_7.items():
            for label in labels:
                parse[:, j] += parse_old[:, label]
        # Part 2: the GMM warps the *given* cloth to the *predicted* garment region.
        gmm_input = torch.cat((parse[:, 2:3], x["pose_img"], x["img_agnostic"]), dim=1)
        _, grid = nets["gmm"](gmm_input, x["cloth"], SIZE)
        warped_c = F.grid_sample(x["cloth"], grid, padding_mode="border", align_corners=False)
        warped_cm = F.grid_sample(x["cloth_mask"], grid, padding_mode="border", align_corners=False)
        # Part 3.
        misalign = parse[:, 2:3] - warped_cm
        misalign[misalign < 0.0] = 0.0
        parse_div = torch.cat((parse, misalign), dim=1)
        parse_div[:, 2:3] -= misalign
        output = nets["alias"](torch.cat((x["img_agnostic"], x["pose_img"], warped_c), dim=1), parse, parse_div, misalign)
    torch.testing.assert_close(steps.seg_scores, parse_pred_down, rtol=0, atol=0)
    torch.testing.assert_close(steps.blurred, blurred, rtol=0, atol=1e-6)
    assert torch.equal(steps.labels13, parse_pred[:, 0])
    assert torch.equal(steps.parse7, parse)
    torch.testing.assert_close(steps.warped, warped_c, rtol=0, atol=1e-6)
    torch.testing.assert_close(steps.warped_mask, warped_cm, rtol=0, atol=1e-6)
    torch.testing.assert_close(steps.misalign, misalign, rtol=0, atol=1e-6)
    torch.testing.assert_close(steps.output, output, rtol=0, atol=1e-5)
    assert not torch.equal(steps.parse7, chain.stages["alias"].inputs(batch)["seg"]), \
        "the chain must not read the ground-truth parse"


@pytest.fixture(scope="module")
def trained_seg(data):
    """A small segmentation stage trained briefly on the synthetic set (paired, as VITON-HD trains it)."""
    torch.manual_seed(0)
    seg = get_recipe("viton_hd.seg")(RecipeContext(image_size=SIZE, model=TINY["seg"], loss_weights={"adv": 0.0}))
    net = seg.build_networks()["G"]
    optimizer = torch.optim.Adam(net.parameters(), lr=2e-3, betas=(0.5, 0.999))
    representation = get_representation("viton_hd")
    arrays = [representation(s) for s in data["samples"]]
    keys = [s.key for s in data["samples"]]
    for step in range(250):
        idx = np.random.default_rng(step).choice(len(arrays), 8, replace=False)
        terms, _ = seg.g_losses({"G": net}, seg.inputs(collate([arrays[i] for i in idx], [keys[i] for i in idx])))
        optimizer.zero_grad()
        terms["ce"].backward()
        optimizer.step()
    return net.eval()


def test_a_new_garment_changes_the_try_on_and_the_predicted_parse_follows_its_sleeves(data, trained_seg):
    torch.manual_seed(1)
    chain = _chain()
    nets = {k: v.eval() for k, v in chain.build_networks().items()}
    nets["seg"] = trained_seg
    by_sleeve = sorted(data["samples"], key=lambda s: data["sleeves"][s.key])
    short, long_ = by_sleeve[0], by_sleeve[-1]
    assert data["sleeves"][long_.key] - data["sleeves"][short.key] > 0.5
    persons = [s for s in by_sleeve[70:75]]
    upper_gain, arm_loss = [], []
    for person in persons:
        dressed = [dataclasses.replace(person, cloth=c.cloth, cloth_mask=c.cloth_mask) for c in (short, long_)]
        with torch.no_grad():
            steps = chain.run(nets, chain.inputs(_batch(dressed)))
        assert not torch.equal(steps.output[0], steps.output[1]), "two garments, one picture"
        upper = (steps.labels13 == 3).flatten(1).sum(1)  # VITON-HD 13: upper clothes
        arms = ((steps.labels13 == 5) | (steps.labels13 == 6)).flatten(1).sum(1)
        upper_gain.append(int(upper[1] - upper[0]))
        arm_loss.append(int(arms[0] - arms[1]))
    # Long sleeves cover the arms: more upper-clothes region, never more bare arm.
    assert sum(g > 0 for g in upper_gain) >= 4 and sum(upper_gain) > 5 * 10, upper_gain
    assert all(a >= 0 for a in arm_loss), arm_loss
