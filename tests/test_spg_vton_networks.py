"""Seed 004's networks (Table I, FAMILIES.md §3.2) and losses: parameter counts, output shapes,
the conductible cycle at the identity warp, the focal loss."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import vton_models  # noqa: F401
from vton_models.families.spg_vton.networks import SPGDiscriminator, SPGGenerator, cwm_gmm


def _count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_parameter_counts_and_shapes_of_table_one():
    assert [_count(SPGGenerator(i, o)) for i, o in ((41, 20), (44, 4), (24, 4))] == [23_638_556, 23_627_180, 23_615_660]
    assert [_count(SPGDiscriminator(c)) for c in (61, 47, 27, 30)] == [127_810, 119_746, 108_226, 109_954]
    assert _count(cwm_gmm((256, 192))) == 19_034_098
    assert _count(SPGGenerator(24, 4, head="plain")) == 23_615_660

    g = SPGGenerator(24, 4)
    conv7 = next(m for m in g.model if isinstance(m, torch.nn.Conv2d) and (m.in_channels, m.out_channels) == (256, 128))
    shapes = []
    conv7.register_forward_hook(lambda module, inputs, output: shapes.append(tuple(output.shape)))
    assert g(torch.zeros(1, 24, 256, 192)).shape == (1, 4, 256, 192)
    assert shapes == [(1, 128, 128, 96)]  # Conv7: the table's "128x92" is 128x96
    scores = SPGDiscriminator(27)(torch.zeros(1, 27, 256, 192))
    assert [tuple(s.shape) for s in scores] == [(1, 1, 64, 48), (1, 1, 32, 24)]
    with pytest.raises(ValueError, match="head 'soft' is not one of"):
        SPGGenerator(24, 4, head="soft")
    with pytest.raises(ValueError, match=r"SPGGenerator expects \(B, 24, H, W\) with H and W divisible by 8"):
        g(torch.zeros(1, 24, 60, 48))


def test_the_cycle_at_the_identity_warp_returns_the_cloth_and_costs_nothing():
    from vton_models.losses import conductible_cycle

    gmm = cwm_gmm((64, 64), ngf=8)
    mask = (torch.rand(2, 1, 64, 48) > 0.5).float()  # the TPS grid is drawn at any size

    def warp(x, theta):  # CP-VTON's sampling convention: the TPS grid spans the pixel centres
        return F.grid_sample(x, gmm.gridGen(theta, (64, 48)), align_corners=True)

    identity = torch.zeros(2, 50)
    forward = warp(mask, identity)
    back = warp(forward, identity)
    torch.testing.assert_close(forward, mask, atol=1e-4, rtol=0)  # float32 TPS basis
    torch.testing.assert_close(back, mask, atol=1e-4, rtol=0)
    assert conductible_cycle(forward, mask, back, mask) < 2e-5
    bent = identity + 0.1 * torch.randn(2, 50)
    forward = warp(mask, bent)
    assert conductible_cycle(forward, mask, warp(forward, identity), mask) > 0.01


def test_focal_loss_is_the_cross_entropy_at_gamma_zero_and_discounts_easy_pixels():
    from vton_models.losses import focal_loss

    torch.manual_seed(0)
    logits, labels = torch.randn(2, 20, 8, 6), torch.randint(0, 20, (2, 8, 6))
    torch.testing.assert_close(focal_loss(logits, labels, 0.0), F.cross_entropy(logits, labels))
    assert focal_loss(logits, labels, 2.0) < F.cross_entropy(logits, labels)
    confident = F.one_hot(labels, 20).permute(0, 3, 1, 2).float() * 10
    assert focal_loss(confident, labels) < 1e-8 < F.cross_entropy(confident, labels)


def test_face_identity_loss_is_zero_for_the_same_face_and_refuses_missing_weights(tmp_path, monkeypatch):
    from vton_models import weights
    from vton_models.losses import FaceIdentityLoss

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty"))
    with pytest.raises(weights.MissingWeightsError) as err:
        FaceIdentityLoss()
    message = str(err.value)
    assert "sphere20a_20171020.pth" in message and str(tmp_path / "empty" / "hub" / "checkpoints") in message
    assert "extract sphere20a_20171020.pth and copy it to" in message

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "home"))
    weights.write_random_weights(tmp_path / "home", ["sphereface20a"])  # the release's exact keys and shapes
    loss = FaceIdentityLoss()
    assert not any(p.requires_grad for p in loss.parameters()) and not loss.network.training
    loss.train()
    assert not loss.network.training
    torch.manual_seed(0)
    face = torch.rand(2, 3, 112, 96) * 2 - 1
    assert loss(face, face) == 0
    other = (face + 0.5 * torch.randn_like(face)).clamp(-1, 1).requires_grad_(True)
    value = loss(other, face)
    assert value > 0
    value.backward()
    assert other.grad is not None and other.grad.abs().sum() > 0
    assert all(p.grad is None for p in loss.parameters())
    with pytest.raises(ValueError, match=r"SphereFace20a expects \(B, 3, 112, 96\) face crops"):
        loss(torch.zeros(1, 3, 64, 64), torch.zeros(1, 3, 64, 64))
