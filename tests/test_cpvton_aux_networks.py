"""CP-VTON's TOM written out (``TOMGenerator``) computes what CP-VTON's nested ``UnetGenerator`` does.

The reference below follows CP-VTON's ``networks.py`` (``UnetGenerator`` / ``UnetSkipConnectionBlock``
with ``InstanceNorm2d``, ``num_downs=6``): nested blocks, in-place LeakyReLU on each block's input,
bilinear upsampling + 3x3 convs, IN on the outermost output. Its randomly initialised state dict is
loaded into ours through ``official_tom_keys`` (strictly), and the outputs must agree.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

import vton_models  # noqa: F401
from vton_models.families.cpvton_aux.networks import TOMGenerator, official_tom_keys


class _Block(nn.Module):
    def __init__(self, outer: int, inner: int, input_nc: int | None = None, submodule: nn.Module | None = None,
                 outermost: bool = False, innermost: bool = False) -> None:
        super().__init__()
        self.outermost = outermost
        input_nc = outer if input_nc is None else input_nc
        downconv = nn.Conv2d(input_nc, inner, kernel_size=4, stride=2, padding=1, bias=True)
        upsample = nn.Upsample(scale_factor=2, mode="bilinear")
        if outermost:
            model = [downconv, submodule, nn.ReLU(True), upsample,
                     nn.Conv2d(inner * 2, outer, 3, 1, 1, bias=True), nn.InstanceNorm2d(outer)]
        elif innermost:
            model = [nn.LeakyReLU(0.2, True), downconv, nn.ReLU(True), upsample,
                     nn.Conv2d(inner, outer, 3, 1, 1, bias=True), nn.InstanceNorm2d(outer)]
        else:
            model = [nn.LeakyReLU(0.2, True), downconv, nn.InstanceNorm2d(inner), submodule, nn.ReLU(True), upsample,
                     nn.Conv2d(inner * 2, outer, 3, 1, 1, bias=True), nn.InstanceNorm2d(outer)]
        self.model = nn.Sequential(*model)

    def forward(self, x):
        return self.model(x) if self.outermost else torch.cat([x, self.model(x)], 1)


class _CPVTONUnet(nn.Module):
    def __init__(self, input_nc: int = 25, output_nc: int = 4, num_downs: int = 6, ngf: int = 64) -> None:
        super().__init__()
        block = _Block(ngf * 8, ngf * 8, innermost=True)
        for _ in range(num_downs - 5):
            block = _Block(ngf * 8, ngf * 8, submodule=block)
        block = _Block(ngf * 4, ngf * 8, submodule=block)
        block = _Block(ngf * 2, ngf * 4, submodule=block)
        block = _Block(ngf, ngf * 2, submodule=block)
        self.model = _Block(output_nc, ngf, input_nc=input_nc, submodule=block, outermost=True)

    def forward(self, x):
        return self.model(x)


def test_parameter_counts_of_tom_and_its_auxiliary_decoder():
    assert sum(p.numel() for p in TOMGenerator().parameters()) == 21_349_252 == \
        sum(p.numel() for p in _CPVTONUnet().parameters())
    aux = TOMGenerator(aux_classes=20)
    assert sum(p.numel() for p in aux.aux_decoder.parameters()) == 10_198_996
    assert sum(p.numel() for p in aux.parameters()) == 31_548_248


@pytest.mark.parametrize("ngf, size", [(64, (256, 192)), (8, (128, 64))])
def test_cpvton_weights_give_cpvtons_output(ngf, size):
    torch.manual_seed(0)
    official = _CPVTONUnet(ngf=ngf).eval()
    ours = TOMGenerator(ngf=ngf, aux_classes=20).eval()
    state = {official_tom_keys()[k]: v for k, v in official.state_dict().items()}
    missing, unexpected = ours.load_state_dict(state, strict=False)
    assert not unexpected and all(k.startswith("aux_decoder.") for k in missing)  # the auxiliary head stays fresh
    x = torch.randn(2, 25, *size)
    with torch.no_grad():
        expected = official(x.clone())
        out, aux = ours(x)
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-5)
    assert aux.shape == (2, 20, *size)


def test_the_auxiliary_decoder_reads_the_shared_encoder_and_a_bad_input_is_named():
    net = TOMGenerator(ngf=8, aux_classes=7)
    x = torch.randn(1, 25, 64, 64, requires_grad=True)
    _, aux = net(x)
    aux.sum().backward()
    assert all(p.grad is not None for p in net.downs.parameters())  # the encoder learns from the aux loss too
    assert all(p.grad is None for p in net.decoder.parameters())
    no_skips = TOMGenerator(ngf=8, aux_classes=7, aux_skips=False)
    assert sum(p.numel() for p in no_skips.aux_decoder.parameters()) < sum(p.numel() for p in net.aux_decoder.parameters())
    assert no_skips(torch.randn(1, 25, 64, 64))[1].shape == (1, 7, 64, 64)
    with pytest.raises(ValueError, match=r"TOMGenerator expects \(B, 25, H, W\) with H and W divisible by 64"):
        net(torch.randn(1, 25, 64, 48))


def test_gmm_with_auxiliary_head_counts_and_warps_as_the_plain_gmm():
    from vton_models.families.cpvton_aux.networks import GMMAux
    from vton_models.networks.gmm import GMM

    assert sum(p.numel() for p in GMMAux().parameters()) == 19_057_650
    aux = GMMAux(aux_classes=20)
    assert sum(p.numel() for p in aux.aux_decoder.parameters()) == 2_752_628
    assert sum(p.numel() for p in aux.parameters()) == 21_810_278
    assert sum(p.numel() for p in GMMAux(aux_classes=7).aux_decoder.parameters()) == 2_748_871

    torch.manual_seed(1)
    small = GMMAux(input_size=(64, 64), ngf=8, aux_classes=7).eval()
    plain = GMM(22, 3, (64, 64), (64, 64), 5, 8, tps_extent=1.0).eval()
    missing, _ = plain.load_state_dict(small.state_dict(), strict=False)
    assert not missing
    a, b = torch.randn(2, 22, 64, 64), torch.randn(2, 3, 64, 64)
    theta, grid, logits = small(a, b)
    ref_theta, ref_grid = plain(a, b)
    assert torch.equal(theta, ref_theta) and torch.equal(grid, ref_grid)  # the head does not change the warp
    assert logits.shape == (2, 7, 64, 64)
    small.train()
    small(a, b)[2].sum().backward()
    assert all(p.grad is not None for p in small.extractionA.parameters())  # both encoders learn from it
    assert all(p.grad is not None for p in small.extractionB.parameters())
    assert all(p.grad is None for p in small.regression.parameters())


# ------------------------------------------------------------------------------------ the importer


def _cpvton_gmm_state(seed: int = 2) -> dict[str, torch.Tensor]:
    """A state dict with exactly the names and shapes of CP-VTON's GMM(opt) at 256x192, grid 5."""
    from vton_models.networks.gmm import GMM

    torch.manual_seed(seed)
    state = GMM(22, 3, (256, 192), (256, 192), 5, 64, tps_extent=1.0).state_dict()
    # CP-VTON's own names, written out for the ends of both extractors and the regression:
    assert tuple(state["extractionA.model.0.weight"].shape) == (64, 22, 4, 4)
    assert tuple(state["extractionB.model.0.weight"].shape) == (64, 3, 4, 4)
    assert tuple(state["regression.conv.0.weight"].shape) == (512, 192, 4, 4)
    assert tuple(state["regression.linear.weight"].shape) == (50, 768)
    return state


def test_cpvton_checkpoints_load_strictly_with_fresh_auxiliary_heads(tmp_path):
    from vton_models.families.cpvton_aux import importer

    torch.manual_seed(3)
    official_tom = _CPVTONUnet().state_dict()
    torch.save(official_tom, tmp_path / "tom_final.pth")
    tom = importer.load_official("tom", tmp_path / "tom_final.pth", TOMGenerator(aux_classes=20))
    mapped = {importer.KEY_MAP["tom"][k]: v for k, v in official_tom.items()}
    assert all(torch.equal(tom.state_dict()[k], v) for k, v in mapped.items())
    gmm_state = _cpvton_gmm_state()
    torch.save({"state_dict": gmm_state}, tmp_path / "gmm_final.pth")  # a wrapped checkpoint is unwrapped
    gmm = importer.load_official("gmm", tmp_path / "gmm_final.pth")
    assert all(torch.equal(gmm.state_dict()[k], v) for k, v in gmm_state.items())

    truncated = dict(official_tom)
    truncated.pop("model.model.1.model.3.model.1.weight")
    with pytest.raises(importer.CheckpointMismatch, match=r"CP-VTON tom checkpoint .*missing keys \(1\): "
                                                          r"\['downs.2.0.weight'\]"):
        importer.load_official("tom", truncated)
    renamed = {k.replace("regression.linear", "regression.fc"): v for k, v in gmm_state.items()}
    with pytest.raises(importer.CheckpointMismatch) as err:
        importer.load_official("gmm", renamed)
    assert "regression.linear.weight" in str(err.value) and "regression.fc.weight" in str(err.value)
    with pytest.raises(FileNotFoundError, match="CP-VTON gmm checkpoint not found"):
        importer.load_official("gmm", tmp_path / "nope.pth")
