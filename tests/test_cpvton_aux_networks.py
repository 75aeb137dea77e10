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


# ------------------------------------------- CP-VTON's GMM, written from its networks.py, on our weights


def _cpvton_extractor(input_nc: int, ngf: int = 64) -> nn.Sequential:
    """CP-VTON's FeatureExtraction(n_layers=3): conv4x4/2, ReLU, BN; widths doubling to 512; two 3x3 at 512."""
    layers: list[nn.Module] = [nn.Conv2d(input_nc, ngf, 4, 2, 1), nn.ReLU(True), nn.BatchNorm2d(ngf)]
    for i in range(3):
        in_nc, out_nc = min(2 ** i * ngf, 512), min(2 ** (i + 1) * ngf, 512)
        layers += [nn.Conv2d(in_nc, out_nc, 4, 2, 1), nn.ReLU(True), nn.BatchNorm2d(out_nc)]
    layers += [nn.Conv2d(512, 512, 3, 1, 1), nn.ReLU(True), nn.BatchNorm2d(512), nn.Conv2d(512, 512, 3, 1, 1), nn.ReLU(True)]
    return nn.Sequential(*layers)


class _CPVTONGMM(nn.Module):
    """CP-VTON's GMM forward at 256x192, grid 5: its L2 norm (eps inside the root), its correlation
    (A transposed to (w, h) order), its regression, and its TPS evaluated in float64 numpy by solving
    the spline system at each output pixel of ``linspace(-1, 1)``."""

    def __init__(self) -> None:
        super().__init__()
        self.extractionA, self.extractionB = nn.Module(), nn.Module()
        self.extractionA.model, self.extractionB.model = _cpvton_extractor(22), _cpvton_extractor(3)
        self.regression = nn.Module()
        self.regression.conv = nn.Sequential(
            nn.Conv2d(192, 512, 4, 2, 1), nn.BatchNorm2d(512), nn.ReLU(True), nn.Conv2d(512, 256, 4, 2, 1),
            nn.BatchNorm2d(256), nn.ReLU(True), nn.Conv2d(256, 128, 3, padding=1), nn.BatchNorm2d(128), nn.ReLU(True),
            nn.Conv2d(128, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(True))
        self.regression.linear = nn.Linear(64 * 4 * 3, 50)

    @staticmethod
    def _l2norm(f):
        return f / torch.pow(torch.sum(f ** 2, 1) + 1e-6, 0.5).unsqueeze(1).expand_as(f)

    def forward(self, a, b):
        fa, fb = self._l2norm(self.extractionA.model(a)), self._l2norm(self.extractionB.model(b))
        n, c, h, w = fa.shape
        mul = torch.bmm(fb.view(n, c, h * w).transpose(1, 2), fa.transpose(2, 3).contiguous().view(n, c, h * w))
        corr = mul.view(n, h, w, h * w).transpose(2, 3).transpose(1, 2)
        x = self.regression.conv(corr)
        theta = torch.tanh(self.regression.linear(x.reshape(n, -1)))  # (its .view, on a non-contiguous conv output today)
        return theta, self._tps(theta.double().numpy(), 256, 192)

    @staticmethod
    def _tps(theta, out_h, out_w, grid=5):
        import numpy as np

        axis = np.linspace(-1, 1, grid)
        p_y, p_x = np.meshgrid(axis, axis)  # CP-VTON's order: x varies slowest
        p_x, p_y = p_x.reshape(-1), p_y.reshape(-1)
        k = grid * grid

        def u(d2):
            d2 = np.where(d2 == 0, 1.0, d2)
            return d2 * np.log(d2)

        L = np.zeros((k + 3, k + 3))
        L[:k, :k] = u((p_x[:, None] - p_x[None]) ** 2 + (p_y[:, None] - p_y[None]) ** 2)
        L[:k, k] = L[k, :k] = 1
        L[:k, k + 1], L[k + 1, :k], L[:k, k + 2], L[k + 2, :k] = p_x, p_x, p_y, p_y
        gx, gy = np.meshgrid(np.linspace(-1, 1, out_w), np.linspace(-1, 1, out_h))
        phi_u = u((gx[..., None] - p_x) ** 2 + (gy[..., None] - p_y) ** 2)  # (H, W, k)
        out = []
        for t in theta:
            coords = []
            for q in (t[:k] + p_x, t[k:] + p_y):
                sol = np.linalg.solve(L, np.concatenate([q, np.zeros(3)]))
                w_, a_ = sol[:k], sol[k:]
                coords.append(a_[0] + a_[1] * gx + a_[2] * gy + phi_u @ w_)
            out.append(np.stack(coords, -1))
        return torch.from_numpy(np.stack(out))


def test_cpvton_gmm_weights_give_cpvtons_theta_grid_and_warp():
    import torch.nn.functional as F

    from vton_models.families.cpvton_aux import importer
    from vton_models.families.cpvton_aux.recipes import CPVTONGMMRecipe
    from vton_models.recipe import RecipeContext

    torch.manual_seed(4)
    reference = _CPVTONGMM().eval()
    for module in reference.modules():  # non-trivial BN statistics, so running stats matter
        if isinstance(module, nn.BatchNorm2d):
            module.running_mean.uniform_(-0.1, 0.1)
            module.running_var.uniform_(0.5, 1.5)
    recipe = CPVTONGMMRecipe(RecipeContext(image_size=(256, 192), model={"align_corners": True}))
    ours = importer.load_official("gmm", reference.state_dict(), recipe.build_networks()["G"]).eval()

    agnostic, cloth = torch.randn(2, 22, 256, 192), torch.rand(2, 3, 256, 192) * 2 - 1
    with torch.no_grad():
        theta_ref, grid_ref = reference(agnostic, cloth)
        theta, warped, _, _ = recipe.warp(ours, {"agnostic": agnostic, "cloth": cloth,
                                                 "cloth_mask": torch.ones(2, 1, 256, 192)})
    assert theta_ref.abs().max() > 0.05  # a warp that is not the identity
    torch.testing.assert_close(theta, theta_ref, atol=1e-5, rtol=0)
    torch.testing.assert_close(ours.gridGen(theta_ref, (256, 192)).double(), grid_ref, atol=1e-5, rtol=0)
    # CP-VTON samples with PyTorch < 1.3's grid_sample, i.e. align_corners=True, border padding for the cloth.
    warped_ref = F.grid_sample(cloth, grid_ref.float(), padding_mode="border", align_corners=True)
    torch.testing.assert_close(warped, warped_ref, atol=1e-4, rtol=0)


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
