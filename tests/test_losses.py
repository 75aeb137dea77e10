"""Losses (GAN modes, feature matching, gradient penalty, VGG perceptual) and the weights module."""

from __future__ import annotations

import dataclasses
import math

import pytest

import vton_models  # noqa: F401  - first, so torchvision imports on CPU-only torch
import torch
from torch import nn

from plugins.weights import torch_home  # noqa: F401  - session fixture
from vton_models import weights
from vton_models.losses import (
    PIX2PIXHD_VGG_WEIGHTS,
    GANLoss,
    VGGPerceptualLoss,
    feature_matching_loss,
    gradient_penalty,
    l1_loss,
)

# ------------------------------------------------------------------------------------------
# GANLoss: values on a 2x2 prediction p = [[0.5, -1], [2, 0]], computed by hand.
P = torch.tensor([[[[0.5, -1.0], [2.0, 0.0]]]])


def _softplus(x: float) -> float:
    return math.log1p(math.exp(x))


# (mode, D real, D fake, G)
HAND = {
    # (p-1)^2 = .25, 4, 1, 1 -> 1.5625 ; p^2 = .25, 1, 4, 0 -> 1.3125
    "lsgan": (1.5625, 1.3125, 1.5625),
    # relu(1-p) = .5, 2, 0, 1 -> .875 ; relu(1+p) = 1.5, 0, 3, 1 -> 1.375 ; -mean(p) = -.375
    "hinge": (0.875, 1.375, -0.375),
    "wgan": (-0.375, 0.375, -0.375),
    "vanilla": (
        sum(_softplus(-v) for v in (0.5, -1.0, 2.0, 0.0)) / 4,
        sum(_softplus(v) for v in (0.5, -1.0, 2.0, 0.0)) / 4,
        sum(_softplus(-v) for v in (0.5, -1.0, 2.0, 0.0)) / 4,
    ),
}


@pytest.mark.parametrize("mode", sorted(HAND))
def test_gan_loss_values(mode: str) -> None:
    loss = GANLoss(mode)
    d_real, d_fake, g = HAND[mode]
    assert loss(P, True, for_discriminator=True).item() == pytest.approx(d_real, abs=1e-6)
    assert loss(P, False, for_discriminator=True).item() == pytest.approx(d_fake, abs=1e-6)
    assert loss(P, True, for_discriminator=False).item() == pytest.approx(g, abs=1e-6)


def test_gan_loss_averages_a_list_of_scales() -> None:
    loss = GANLoss("lsgan")
    second = torch.zeros(1, 1, 3, 3)  # (0-1)^2 = 1 everywhere
    assert loss([P, second], True).item() == pytest.approx((1.5625 + 1.0) / 2)


def test_gan_loss_rejects_unknown_mode_and_fake_target_for_generator() -> None:
    with pytest.raises(ValueError, match="gan_mode: unknown mode 'bogus'"):
        GANLoss("bogus")
    with pytest.raises(ValueError, match="target_is_real=True"):
        GANLoss("hinge")(P, False, for_discriminator=False)


def test_l1_loss() -> None:
    assert l1_loss(torch.zeros(1, 3, 2, 2), torch.full((1, 3, 2, 2), 0.5)).item() == pytest.approx(0.5)


# ------------------------------------------------------------------------------------------
# Feature matching


def test_feature_matching_sums_mean_l1_over_layers_and_pulls_only_fake() -> None:
    real = [torch.zeros(1, 2, 2, 2), torch.ones(1, 4, 1, 1)]
    fake = [torch.full((1, 2, 2, 2), 0.5, requires_grad=True), torch.full((1, 4, 1, 1), 3.0, requires_grad=True)]
    real[0].requires_grad_(True)
    loss = feature_matching_loss(real, fake)
    assert loss.item() == pytest.approx(0.5 + 2.0)  # |0.5 - 0| + |3 - 1|
    loss.backward()
    assert fake[0].grad is not None and fake[1].grad is not None
    assert real[0].grad is None  # targets are detached


def test_feature_matching_averages_scales_and_checks_lengths() -> None:
    a = [torch.zeros(1, 1, 2, 2)]
    b = [torch.ones(1, 1, 2, 2)]
    c = [torch.full((1, 1, 2, 2), 3.0)]
    assert feature_matching_loss([a, a], [b, c]).item() == pytest.approx((1.0 + 3.0) / 2)
    with pytest.raises(ValueError, match="must be equal"):
        feature_matching_loss(a + a, b)
    with pytest.raises(ValueError, match="differ in shape"):
        feature_matching_loss([torch.zeros(1, 1, 2, 2)], [torch.zeros(1, 1, 3, 3)])


# ------------------------------------------------------------------------------------------
# Gradient penalty on a linear D: D(x) = sum over pixels of w . x + b (a 1x1 convolution).
# The gradient w.r.t. the image is w_img at each of the H*W pixels whatever the interpolation,
# so ||grad|| = sqrt(H*W) * ||w_img|| = 2 * 0.3 = 0.6 and the penalty is (0.6 - 1)^2 = 0.16.


def _linear_d() -> nn.Conv2d:
    d = nn.Conv2d(6, 1, kernel_size=1)
    with torch.no_grad():
        d.weight.copy_(torch.tensor([0.1, 0.2, 0.2, 0.7, -0.3, 0.5]).view(1, 6, 1, 1))
        d.bias.fill_(0.25)
    return d


def test_gradient_penalty_on_linear_discriminator_equals_hand_value() -> None:
    d = _linear_d()
    real, fake = torch.randn(3, 3, 2, 2), torch.randn(3, 3, 2, 2)
    condition = torch.randn(3, 3, 2, 2)
    penalty = gradient_penalty(d, real, fake, condition)
    assert penalty.item() == pytest.approx(0.16, abs=1e-6)
    # Double backward: d/dw_img (||g|| - 1)^2 = 2 (0.6 - 1) * sqrt(4) * w_img / ||w_img||.
    penalty.backward()
    w_img = torch.tensor([0.1, 0.2, 0.2])
    expected = 2 * (0.6 - 1.0) * 2.0 * w_img / 0.3
    assert torch.allclose(d.weight.grad.view(6)[:3], expected, atol=1e-5)
    assert torch.allclose(d.weight.grad.view(6)[3:], torch.zeros(3))  # condition is not penalised
    assert d.bias.grad is None  # the bias does not change the gradient w.r.t. the input


def test_gradient_penalty_without_condition_and_shape_check() -> None:
    d = nn.Conv2d(3, 1, kernel_size=1, bias=False)
    with torch.no_grad():
        d.weight.copy_(torch.tensor([0.0, 0.0, 0.5]).view(1, 3, 1, 1))
    # ||grad|| = sqrt(1 * 1) * 0.5 -> (0.5 - 1)^2
    assert gradient_penalty(d, torch.zeros(2, 3, 1, 1), torch.ones(2, 3, 1, 1)).item() == pytest.approx(0.25)
    with pytest.raises(ValueError, match="differ"):
        gradient_penalty(d, torch.zeros(2, 3, 1, 1), torch.zeros(2, 3, 2, 2))


# ------------------------------------------------------------------------------------------
# VGG perceptual loss


def test_vgg_normalisation_and_layer_weights_with_identity_features() -> None:
    # Identity "features": every slice passes the ImageNet-normalised image through, so the loss
    # is sum(weights) * mean(|x - y|) / (2 * std) per channel (x, y in [-1, 1]).
    loss = VGGPerceptualLoss(features=nn.Sequential(*[nn.Identity() for _ in range(30)]))
    assert loss.layer_weights == list(PIX2PIXHD_VGG_WEIGHTS)
    x = torch.zeros(1, 3, 4, 4)
    y = torch.full((1, 3, 4, 4), 0.5)
    std = torch.tensor([0.229, 0.224, 0.225])
    per_layer = (0.5 / 2 / std).mean().item()
    assert loss(x, y).item() == pytest.approx(sum(PIX2PIXHD_VGG_WEIGHTS) * per_layer, rel=1e-5)
    with pytest.raises(ValueError, match="layer_weights needs 5"):
        VGGPerceptualLoss(layer_weights=[1.0, 1.0], features=nn.Sequential(*[nn.Identity() for _ in range(30)]))


def test_vgg_loss_loads_through_weights_and_is_zero_for_identical_images(torch_home) -> None:  # noqa: F811
    loss = VGGPerceptualLoss()
    assert not any(p.requires_grad for p in loss.parameters())
    loss.train()
    assert not loss.training  # a loss network stays in eval mode
    torch.manual_seed(0)
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    assert loss(x, x.clone()).item() == 0.0
    y = (torch.rand(1, 3, 32, 32) * 2 - 1).requires_grad_(True)
    value = loss(y, x)
    assert value.item() > 0
    value.backward()
    assert y.grad is not None and y.grad.abs().sum() > 0
    # The real image's activations computed once serve every term comparing with it (seed 004).
    shared = loss.target_features(x)
    assert not any(f.requires_grad for f in shared)
    assert torch.equal(loss(y, x, shared), value) and torch.equal(loss(y * 0.5, x, shared), loss(y * 0.5, x))


def test_missing_weight_file_names_the_path_and_the_command(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    expected = tmp_path / "hub" / "checkpoints" / "vgg19-dcbb9e9d.pth"
    with pytest.raises(weights.MissingWeightsError) as info:
        weights.require("vgg19")
    assert str(expected) in str(info.value)
    assert "vton weights prepare" in str(info.value)
    with pytest.raises(weights.MissingWeightsError, match="vton weights prepare"):
        VGGPerceptualLoss()
    assert [s.present for s in weights.status()] == [False] * len(weights.PRETRAINED)
    with pytest.raises(ValueError, match="unknown pretrained file 'resnet'"):
        weights.require("resnet")


def test_random_weight_files_are_accepted_by_the_real_loaders(torch_home) -> None:  # noqa: F811
    import torchvision
    from pytorch_fid.inception import fid_inception_v3

    assert all(s.present for s in weights.status())
    assert {s.path.parent for s in weights.status()} == {torch_home / "hub" / "checkpoints"}
    torchvision.models.alexnet(weights=torchvision.models.AlexNet_Weights.IMAGENET1K_V1)
    torchvision.models.vgg16(weights=torchvision.models.VGG16_Weights.IMAGENET1K_V1)
    net = fid_inception_v3().eval()
    with torch.no_grad():
        assert torch.isfinite(net(torch.rand(1, 3, 75, 75))).all()


def test_prepare_skips_present_files_and_reports_failed_downloads(
    torch_home, tmp_path, monkeypatch  # noqa: F811
) -> None:
    def no_network() -> None:
        raise OSError("network unreachable")

    for name, entry in list(weights.PRETRAINED.items()):
        monkeypatch.setitem(weights.PRETRAINED, name, dataclasses.replace(entry, download=no_network))
    automatic = [s.path for s in weights.status() if not weights.PRETRAINED[s.name].manual]
    assert weights.prepare() == automatic  # nothing downloaded; files placed by hand are not its business
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(RuntimeError, match="could not download 'vgg19'.*network unreachable"):
        weights.prepare(["vgg19"])
