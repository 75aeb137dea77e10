"""VITON-HD networks: official parameter counts and key sets, forward passes, importer, TPS, representation."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from vton_models.families.viton_hd.importer import CheckpointMismatch, build_official, load_official, map_state_dict
from vton_models.families.viton_hd.inputs import viton_hd_img_agnostic, viton_hd_parse_agnostic, viton_hd_representation
from vton_models.families.viton_hd.networks import ALIASGenerator
from vton_models.layers.tps import TPSGridGen
from vton_models.representation import DecodedSample

REFERENCE = json.loads(Path("/work/shared/reference/viton_hd_state_dicts.json").read_text()) \
    if Path("/work/shared/reference/viton_hd_state_dicts.json").exists() else None
needs_ref = pytest.mark.skipif(REFERENCE is None, reason="shared/reference/viton_hd_state_dicts.json absent")
OFFICIAL_COUNTS = {"seg": 34_531_149, "gmm": 19_042_290, "alias": 100_498_115}


@pytest.fixture(scope="module")
def official() -> dict[str, torch.nn.Module]:
    torch.manual_seed(0)
    return {stage: build_official(stage).eval() for stage in OFFICIAL_COUNTS}


def test_parameter_counts_are_official(official):
    for stage, net in official.items():
        assert sum(p.numel() for p in net.parameters()) == OFFICIAL_COUNTS[stage], stage


@needs_ref
def test_state_dict_keys_and_shapes_are_official(official):
    for stage, net in official.items():
        ours = {k: list(v.shape) for k, v in net.state_dict().items()}
        assert ours == REFERENCE[stage]["state_dict"], stage
        assert REFERENCE[stage]["num_parameters"] == OFFICIAL_COUNTS[stage]


def _random_official(stage: str) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    out = {}
    for key, shape in REFERENCE[stage]["state_dict"].items():
        if key.endswith("num_batches_tracked"):
            out[key] = torch.tensor(7)
        elif key.endswith("running_var"):
            out[key] = torch.rand(shape, generator=g) + 0.5
        else:
            out[key] = torch.randn(shape, generator=g) * 0.02
    return out


@needs_ref
@torch.no_grad()
def test_importer_round_trip_and_forward_at_512x384():
    h, w = 512, 384
    seg = load_official("seg", _random_official("seg"))
    out = seg(torch.randn(1, 21, 256, 192))
    assert out.shape == (1, 13, 256, 192) and torch.isfinite(out).all()
    # Values really come from the file, not from our initialisation.
    assert torch.equal(seg.state_dict()["conv9.6.bias"], _random_official("seg")["conv9.6.bias"])

    from vton_models.networks.gmm import GMM

    gmm = load_official("gmm", _random_official("gmm"), GMM(7, 3, (256, 192), (h, w)))
    theta, grid = gmm(torch.randn(1, 7, 256, 192), torch.randn(1, 3, 256, 192))
    assert theta.shape == (1, 50) and grid.shape == (1, h, w, 2) and torch.isfinite(grid).all()

    alias = load_official("alias", _random_official("alias"))
    parse = F.one_hot(torch.randint(0, 7, (1, h, w)), 7).permute(0, 3, 1, 2).float()
    mis = torch.zeros(1, 1, h, w)
    mis[..., 100:200, 100:200] = 1
    img = alias(torch.randn(1, 9, h, w), parse, torch.cat([parse, mis], 1), mis)
    assert img.shape == (1, 3, h, w) and torch.isfinite(img).all() and img.abs().max() <= 1


@needs_ref
def test_importer_lists_missing_extra_and_misshaped_keys():
    net = build_official("gmm")
    state = _random_official("gmm")
    truncated = {k: v for k, v in state.items() if not k.startswith("regression.linear")}
    with pytest.raises(CheckpointMismatch, match=r"missing keys \(2\).*regression\.linear\.bias.*regression\.linear\.weight"):
        map_state_dict("gmm", truncated, net)
    renamed = dict(state)
    renamed["module.regression.linear.bias"] = renamed.pop("regression.linear.bias")
    with pytest.raises(CheckpointMismatch) as err:
        map_state_dict("gmm", renamed, net)
    assert "regression.linear.bias" in str(err.value) and "module.regression.linear.bias" in str(err.value)
    reshaped = dict(state)
    reshaped["regression.linear.weight"] = torch.zeros(50, 10)
    with pytest.raises(CheckpointMismatch, match=r"regression\.linear\.weight: checkpoint \(50, 10\)"):
        map_state_dict("gmm", reshaped, net)


def test_alias_upsampling_modes_and_small_sizes():
    for mode in ("normal", "more", "most"):
        g = ALIASGenerator(9, 7, ngf=4, num_upsampling_layers=mode, norm_hidden=8).eval()
        # 256x192 is not divisible by 2**7: block sizes are derived from the output size instead.
        parse = torch.zeros(1, 7, 256, 192)
        parse[:, 0] = 1
        out = g(torch.randn(1, 9, 256, 192), parse, torch.cat([parse, torch.zeros(1, 1, 256, 192)], 1),
                torch.zeros(1, 1, 256, 192))
        assert out.shape == (1, 3, 256, 192), mode
    with pytest.raises(ValueError, match="num_upsampling_layers"):
        ALIASGenerator(num_upsampling_layers="many")


def test_alias_noise_is_one_spatial_map_per_sample_scaled_per_channel():
    """The official ALIASNorm draws ``randn(b, w, h, 1) * noise_scale`` and transposes: the same
    map in every channel, times that channel's scale. With the same seed ours is that exact noise."""
    from vton_models.layers.alias import ALIASNorm

    norm = ALIASNorm("instance", channels=3, label_channels=2, hidden=4)
    captured = {}
    norm.param_free_norm.register_forward_pre_hook(lambda _m, args: captured.setdefault("x", args[0].clone()))
    with torch.no_grad():
        norm.noise_scale.copy_(torch.tensor([1.0, 2.0, -0.5]))
    x = torch.zeros(2, 3, 5, 4)
    torch.manual_seed(7)
    norm(x, torch.zeros(2, 2, 5, 4))
    noise = captured["x"]
    torch.manual_seed(7)
    official = (torch.randn(2, 4, 5, 1) * norm.noise_scale).transpose(1, 3)
    assert torch.equal(noise, official)
    torch.testing.assert_close(noise[:, 1], 2.0 * noise[:, 0])
    torch.testing.assert_close(noise[:, 2], -0.5 * noise[:, 0])
    assert not torch.equal(noise[0, 0], noise[1, 0]), "each sample draws its own map"


# ------------------------------------------------------------------------------------------- TPS

def _pattern(h: int = 40, w: int = 32) -> torch.Tensor:
    ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float64), torch.arange(w, dtype=torch.float64), indexing="ij")
    return torch.stack([torch.sin(xs / 3) + ys / h, torch.cos(ys / 4) * xs / w, ((xs // 4 + ys // 4) % 2)])[None]


def test_tps_identity_control_points_give_identity_warp():
    tps = TPSGridGen(grid_size=5, extent=1.0).double()
    grid = tps(torch.zeros(1, 50, dtype=torch.float64), (40, 32))
    assert torch.allclose(grid[0], tps.regular_grid((40, 32)), atol=1e-9)
    img = _pattern()
    warped = F.grid_sample(img, grid, align_corners=True, mode="bilinear")
    assert torch.allclose(warped, img, atol=1e-9)
    # Official extent 0.9: theta = 0 maps every pixel to the regular [-0.9, 0.9] grid.
    official = TPSGridGen(5, 0.9).double()
    assert torch.allclose(official(torch.zeros(2, 50, dtype=torch.float64), (8, 6))[1], official.regular_grid((8, 6)))


def test_tps_affine_control_points_warp_like_affine_grid():
    tps = TPSGridGen(grid_size=5, extent=1.0).double()
    A = torch.tensor([[0.8, 0.15, 0.05], [-0.1, 0.9, -0.08]], dtype=torch.float64)
    px, py = tps.base_x, tps.base_y
    qx = A[0, 0] * px + A[0, 1] * py + A[0, 2]
    qy = A[1, 0] * px + A[1, 1] * py + A[1, 2]
    theta = torch.cat([qx - px, qy - py])[None]
    grid = tps(theta, (40, 32))
    expected = F.affine_grid(A[None], (1, 3, 40, 32), align_corners=True)
    assert torch.allclose(grid, expected, atol=1e-9)
    img = _pattern()
    assert torch.allclose(F.grid_sample(img, grid, align_corners=True),
                          F.grid_sample(img, expected, align_corners=True), atol=1e-9)
    # A bent set of control points is not affine: the warp must differ.
    bent = theta.clone()
    bent[0, 12] += 0.2
    assert (tps(bent, (40, 32)) - expected).abs().max() > 0.05


# ------------------------------------------------------------------------------ representation

def _sample(h: int = 64, w: int = 48) -> DecodedSample:
    parse = np.zeros((h, w), np.uint8)
    parse[4:12, 18:30] = 13      # face
    parse[12:14, 20:28] = 10     # neck
    parse[14:36, 14:34] = 5      # upper clothes
    parse[14:36, 34:40] = 14     # LIP left arm: the person's left, i.e. image right (keypoints 5-7)
    parse[14:36, 8:14] = 15      # LIP right arm: image left (keypoints 2-4)
    parse[36:60, 14:34] = 9      # pants
    person = np.full((h, w, 3), 200, np.uint8)
    person[..., 0] = np.arange(w, dtype=np.uint8)[None] * 3
    pose = np.zeros((25, 3), np.float32)
    pts = {1: (24, 13), 2: (16, 15), 3: (12, 24), 4: (11, 33), 5: (32, 15), 6: (36, 24), 7: (37, 33),
           8: (24, 36), 9: (19, 36), 12: (29, 36), 0: (24, 8)}
    for i, (x, y) in pts.items():
        pose[i] = (x, y, 0.9)
    return DecodedSample(person=person, cloth=np.full((h, w, 3), 50, np.uint8), cloth_mask=np.ones((h, w), np.uint8),
                         parse=parse, pose=pose, pose_format="body25", key="t")


def test_viton_hd_parse_agnostic_removes_garment_neck_and_upper_arms():
    s = _sample()
    xy = s.pose[:18, :2].astype(np.float64)
    ag = viton_hd_parse_agnostic(s.parse, xy)
    assert not np.isin(ag, (5, 6, 7, 10)).any()
    assert (ag[s.parse == 13] == 13).all() and (ag[s.parse == 9] == 9).all()
    # Arm pixels near the shoulder->elbow chain are removed; those are the only arm changes.
    assert (ag[16, 34:40] == 0).all() and (ag[16, 8:14] == 0).all()
    changed = (ag != s.parse) & ~np.isin(s.parse, (5, 6, 7, 10))
    assert np.isin(s.parse[changed], (14, 15)).all()


def test_viton_hd_img_agnostic_grays_torso_and_keeps_head_and_lower_body():
    s = _sample()
    xy = s.pose[:18, :2].astype(np.float64)
    ag = viton_hd_img_agnostic(s.person, s.parse, xy)
    assert (ag[25, 24] == 128).all()                       # torso centre: gray
    keep = np.isin(s.parse, (4, 13, 9, 12, 16, 17, 18, 19))
    assert (ag[keep] == s.person[keep]).all()               # head and pants pasted back
    assert (ag[0, 0] == s.person[0, 0]).all()               # far background untouched


def test_viton_hd_representation_fields():
    s = _sample()
    rep = viton_hd_representation(s, sigma=3.0)
    assert rep["parse_agnostic"].shape == (13, 64, 48) and np.allclose(rep["parse_agnostic"].sum(0), 1)
    assert rep["parse_agnostic"][3].sum() == 0               # no upper-clothes in the agnostic parse
    assert rep["parse13"][3].sum() == (s.parse == 5).sum()   # group 3 = upper (5, 6, 7)
    assert rep["parse7"].shape == (7, 64, 48) and np.allclose(rep["parse7"].sum(0), 1)
    upper = s.parse == 5
    assert np.allclose(rep["warped_cloth"][:, upper], rep["person"][:, upper])
    assert np.allclose(rep["warped_cloth"][:, ~upper], 1.0)
    assert rep["pose_img"].max() > -1 and rep["pose_img"].shape == (3, 64, 48)
