"""Seed 002's building blocks: the Tree-Block (identity when unfused, receptive field from its
dilations), the generators built from it and their parameter counts (FAMILIES.md §2.3), and the
appearance losses (smooth-L1, VGG relu1_2 feature and Gram style, total variation)."""

from __future__ import annotations

import pytest
import torch

import vton_models  # noqa: F401
from vton_models.layers.tree_block import TreeBlock
from vton_models.networks.resnet_generator import ResnetGenerator


def _count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_parameter_counts_of_the_blocks_and_generators():
    from vton_models.layers.residual import ResnetBlock
    from vton_models.networks.gmm import GMM
    from vton_models.networks.patchgan import PatchGANDiscriminator
    from vton_models.networks.unet import CPVTONUNet

    assert _count(TreeBlock(256)) == 2_753_280 and _count(ResnetBlock(256)) == 1_179_648
    assert _count(ResnetGenerator(26, 4)) == 25_610_884  # appearance G, nine Tree-Blocks
    assert _count(ResnetGenerator(26, 4, block="resnet")) == 11_448_196  # SRB-VTON
    assert _count(ResnetGenerator(6, 3, n_blocks=3)) == 9_025_347  # face G
    assert _count(CPVTONUNet(39, 20)) == 21_382_036  # parse net
    assert _count(GMM(20, 3, (256, 192), (256, 192), 5, 64, 1.0)) == 19_055_602
    assert _count(PatchGANDiscriminator(59, use_spectral_norm=False)) == 2_821_185  # D_P
    assert _count(PatchGANDiscriminator(6, use_spectral_norm=False)) == 2_766_913  # D_A, D_F


def test_tree_block_with_zeroed_fusions_is_the_identity():
    torch.manual_seed(0)
    block = TreeBlock(8)
    x = torch.randn(2, 8, 20, 20)
    assert not torch.allclose(block(x), x)
    with torch.no_grad():
        for fusion in block.fusions:
            fusion.weight.zero_()
            fusion.bias.zero_()
    assert torch.equal(block(x), x)


@pytest.mark.parametrize("dilations, reach", [((1, 2, 4, 8), 8), ((1, 2), 2), ((1, 3, 5, 7, 9, 11, 13, 15), 15)])
def test_receptive_field_is_set_by_the_largest_dilation(dilations, reach):
    torch.manual_seed(1)
    block = TreeBlock(4, dilations).double()
    assert len(block.branches) == len(dilations) and len(block.fusions) == len(dilations) - 1
    assert [b[0].dilation for b in block.branches] == [(d, d) for d in dilations]
    size, c = 41, 20
    x = torch.randn(1, 4, size, size, dtype=torch.float64, requires_grad=True)
    # Instance norm couples every pixel to every other through the statistics; probe with it off.
    for branch in block.branches:
        branch[1] = torch.nn.Identity()
    block(x)[0, :, c, c].sum().backward()
    reached = x.grad[0].abs().sum(0) > 0
    ys, xs = torch.nonzero(reached, as_tuple=True)
    assert (ys.min(), ys.max(), xs.min(), xs.max()) == (c - reach, c + reach, c - reach, c + reach)


def test_dilations_and_blocks_are_checked():
    with pytest.raises(ValueError, match=r"power-of-two count .* got \[1, 2, 4\]"):
        TreeBlock(8, (1, 2, 4))
    with pytest.raises(ValueError, match="block 'dense' is not one of"):
        ResnetGenerator(6, 3, block="dense")
    with pytest.raises(ValueError, match=r"ResnetGenerator expects \(B, 6, H, W\) with H and W divisible by 4"):
        ResnetGenerator(6, 3, ngf=4, n_blocks=1)(torch.zeros(1, 6, 30, 32))
    with pytest.raises(ValueError, match=r"TreeBlock: a \(8, 8\) feature map is too small for dilation 8"):
        ResnetGenerator(6, 3, ngf=4, n_blocks=1)(torch.zeros(1, 6, 32, 32))
    out = ResnetGenerator(6, 3, ngf=4, n_blocks=1)(torch.zeros(2, 6, 64, 48))
    assert out.shape == (2, 3, 64, 48)


def test_appearance_losses():
    from vton_models.losses import VGGFeatureStyleLoss, gram_matrix, smooth_l1_loss, total_variation

    x = torch.rand(2, 3, 16, 12) * 2 - 1
    assert total_variation(torch.full((2, 1, 8, 8), 0.3)) == 0
    ramp = torch.arange(8.0).repeat(8, 1)[None, None]  # +1 per column
    assert total_variation(ramp) == 1.0
    assert smooth_l1_loss(x, x + 0.1).item() == pytest.approx(0.005, rel=1e-4)  # 0.5 e^2 below beta
    assert smooth_l1_loss(x, x + 3).item() == pytest.approx(2.5, rel=1e-5)  # |e| - 0.5 above it
    f = torch.randn(2, 4, 5, 6)
    torch.testing.assert_close(gram_matrix(f)[1], f[1].reshape(4, 30) @ f[1].reshape(4, 30).T / 30)

    torch.manual_seed(0)
    import torchvision

    vgg = torchvision.models.vgg19().features
    loss = VGGFeatureStyleLoss("relu1_2", features=vgg)
    assert len(loss.features) == 4 and not any(p.requires_grad for p in loss.parameters())
    feat, style = loss(x, x)
    assert feat == 0 and style == 0
    y = x.clone().requires_grad_(True)
    feat, style = loss(y, x.flip(-1))
    assert feat > 0 and style >= 0
    (feat + style).backward()
    assert y.grad is not None and y.grad.abs().sum() > 0
    feat_only, no_style = loss(y, x.flip(-1), style=False)  # the face stage weighs only the feature term
    assert torch.equal(feat_only, feat) and no_style is None
    with pytest.raises(ValueError, match="unknown layer 'conv9'"):
        VGGFeatureStyleLoss("conv9", features=vgg)
