"""Every metric against an independent reference on the same inputs, plus streaming and bad input.

Weights: the session ``torch_home`` fixture's files are fan-in scaled, so ~100 Inception layers
shrink activations to ~1e-4 and every FID is ~1e-8: a comparison with pytorch-fid would pass
whatever we computed. ``metric_torch_home`` (tests/plugins/weights.py) writes the same files with
He scaling (std sqrt(2/fan_in)),
which keeps the features O(1) so FIDs differ visibly between different and identical folders.
Still random weights, still test-only.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import vton_models  # noqa: F401  - torchvision CPU shim
from vton_models import weights
from vton_models.metrics import (MetricInputError, MetricSuite, SuiteOptions, apply_mask, foreground_mask,
                                 ms_ssim_per_image, psnr_per_image, ssim_per_image)
from vton_models.metrics.distribution import InceptionScoreStats
from vton_models.metrics.folders import iter_folder_pairs

H, W = 64, 48


def _images(seed: int, n: int = 4) -> torch.Tensor:
    """Smooth random images (blurred noise + gradients): SSIM on them is far from 0 and 1."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 3, H // 4, W // 4, generator=g)
    x = torch.nn.functional.interpolate(x, size=(H, W), mode="bilinear", align_corners=False)
    x = 0.7 * x + 0.3 * torch.rand(n, 3, H, W, generator=g)
    return (torch.round(x * 255) / 255).clamp(0, 1)


def _write_folder(folder: Path, images: torch.Tensor) -> None:
    from PIL import Image

    folder.mkdir(parents=True)
    for i, img in enumerate(images):
        arr = (img.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
        Image.fromarray(arr).save(folder / f"{i:03d}.png")


# ------------------------------------------------------------------------------------- paired


def test_ssim_and_psnr_match_scikit_image():
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity

    a = _images(1)
    b = torch.round((0.7 * a + 0.3 * _images(2)) * 255) / 255
    ours_ssim, ours_psnr = ssim_per_image(a, b), psnr_per_image(a, b)
    for i in range(a.shape[0]):
        x, y = a[i].permute(1, 2, 0).double().numpy(), b[i].permute(1, 2, 0).double().numpy()
        ref = structural_similarity(x, y, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                                    data_range=1.0, channel_axis=-1)
        assert ours_ssim[i].item() == pytest.approx(ref, abs=1e-5)
        assert ours_psnr[i].item() == pytest.approx(peak_signal_noise_ratio(y, x, data_range=1.0), abs=1e-4)
    assert 0.05 < float(ours_ssim.mean()) < 0.95


def test_identical_images_give_perfect_paired_scores(metric_torch_home):
    from vton_models.metrics.networks import load_lpips

    a = _images(3)
    assert torch.allclose(ssim_per_image(a, a), torch.ones(4))
    assert torch.allclose(ms_ssim_per_image(a, a), torch.ones(4))
    assert torch.isinf(psnr_per_image(a, a)).all()
    assert load_lpips()(a, a, normalize=True).abs().max().item() < 1e-6
    assert float(ms_ssim_per_image(a, _images(4)).mean()) < 0.99


def test_lpips_matches_a_direct_lpips_call(metric_torch_home):
    import lpips

    a, b = _images(5), _images(6)
    suite = MetricSuite(SuiteOptions(masked=False, fid_dims=64))
    suite.update(a, b, [f"k{i}" for i in range(4)])
    direct = lpips.LPIPS(net="alex", verbose=False).eval()
    with torch.no_grad():
        ref = direct(a * 2 - 1, b * 2 - 1).flatten().mean().item()
    assert suite.compute()["lpips"] == pytest.approx(ref, rel=1e-5)
    assert ref > 0


def test_mask_ssim_masks_background_from_the_real_parse():
    a, b = _images(7, 2), _images(8, 2)
    parse = torch.zeros(2, H, W, dtype=torch.long)
    parse[:, 10:50, 10:40] = 5
    mask = foreground_mask(parse)
    assert mask.shape == (2, 1, H, W) and mask.sum() == 2 * 40 * 30
    fa, fb = apply_mask(a, mask), apply_mask(b, mask)
    assert (fa[:, :, :10] == 0).all() and torch.equal(fa[:, :, 10:50, 10:40], a[:, :, 10:50, 10:40])
    # background identical (zero) in both: mask-SSIM is higher than SSIM on the same pair
    assert (ssim_per_image(fa, fb) > ssim_per_image(a, b)).all()


def test_mask_regions_keep_the_garment_or_the_face_and_hair():
    from vton_models.metrics.masked import region_mask

    parse = torch.tensor([[[0, 2, 13, 5, 6, 7, 14]]])
    assert region_mask(parse, "foreground")[0, 0, 0].tolist() == [0, 1, 1, 1, 1, 1, 1]
    assert region_mask(parse, "cloth")[0, 0, 0].tolist() == [0, 0, 0, 1, 1, 1, 0]
    assert region_mask(parse, "face_hair")[0, 0, 0].tolist() == [0, 1, 1, 0, 0, 0, 0]
    with pytest.raises(MetricInputError, match="mask region 'hands'"):
        region_mask(parse, "hands")
    with pytest.raises(ValueError, match="mask_region 'hands'"):
        SuiteOptions(mask_region="hands")


# ------------------------------------------------------------------------------- distribution


def test_fid_matches_the_pytorch_fid_cli_on_the_same_folders(metric_torch_home, tmp_path):
    real, fake = _images(10, 6), _images(11, 6) * 0.6
    _write_folder(tmp_path / "real", real)
    _write_folder(tmp_path / "fake", fake)
    # --dims 64 on both sides: scipy's sqrtm of 2048x2048 takes ~2 minutes here (see networks.py)
    suite = MetricSuite(SuiteOptions(paired=False, masked=False, fid_dims=64))
    for f, r, names in iter_folder_pairs(tmp_path / "fake", tmp_path / "real", batch_size=3):
        suite.update(f, r, names)
    ours = suite.compute()
    # pytorch-fid's own CLI; the -c prelude only registers the torchvision CPU shim
    # (PLATFORM.md) that a CPU-only torch needs before torchvision is imported.
    code = ("import sys, runpy, vton_models; sys.argv = ['pytorch_fid'] + sys.argv[1:]; "
            "runpy.run_module('pytorch_fid', run_name='__main__')")
    out = subprocess.run([sys.executable, "-c", code, "--device", "cpu", "--num-workers", "0", "--dims", "64",
                          str(tmp_path / "fake"), str(tmp_path / "real")],
                         capture_output=True, text=True, env={**os.environ, "TORCH_HOME": str(metric_torch_home)}, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    ref = float(out.stdout.strip().split("FID:")[-1])
    assert ref > 1e-3, "features too degenerate for a meaningful comparison"
    assert ours["fid"] == pytest.approx(ref, rel=1e-3)

    same = MetricSuite(SuiteOptions(paired=False, masked=False, fid_dims=64))
    same.update(real, real, [f"r{i}" for i in range(6)])
    numbers = same.compute()
    assert abs(numbers["fid"]) < 1e-3 * ref
    # the unbiased MMD^2 of a set with itself is slightly negative at n=6 (diagonal of k_xy)
    assert abs(numbers["kid"]) < ours["kid"]


def test_inception_score_streaming_equals_the_batch_formula():
    logits = torch.randn(10, 1008, dtype=torch.float64) * 3
    stats = InceptionScoreStats()
    stats.update(logits[:3])
    stats.update(logits[3:])
    p = torch.softmax(logits, 1).numpy()
    ref = np.exp(np.mean(np.sum(p * (np.log(p) - np.log(p.mean(0, keepdims=True))), axis=1)))
    assert stats.score() == pytest.approx(ref, rel=1e-9)


def test_split_inception_score_is_the_openai_formula_on_priority_ordered_splits_whatever_the_order():
    from vton_models.metrics.distribution import SplitInceptionScore, key_priority

    torch.manual_seed(0)
    logits = torch.randn(23, 1008, dtype=torch.float64) * 3
    keys = [f"sample-{i}" for i in range(23)]
    ours = SplitInceptionScore(10)
    ours.update(logits[:7], keys[:7])
    other = SplitInceptionScore(10)  # another rank's share, arriving in another order
    other.update(logits[7:].flip(0), keys[7:][::-1])
    ours.merge(other)

    order = sorted(range(23), key=lambda i: key_priority(keys[i]))
    p = torch.softmax(logits, 1).numpy()[order]
    scores = [np.exp(np.mean(np.sum(part * (np.log(part) - np.log(part.mean(0, keepdims=True))), axis=1)))
              for part in np.array_split(p, 10)]  # OpenAI's inception_score(), splits=10
    mean, std = ours.score()
    assert mean == pytest.approx(np.mean(scores), rel=1e-9) and std == pytest.approx(np.std(scores), rel=1e-9)
    assert std > 0
    with pytest.raises(MetricInputError, match="over 10 splits needs at least 10 images, got 3"):
        small = SplitInceptionScore(10)
        small.update(logits[:3], keys[:3])
        small.score()


# ------------------------------------------------------------------------------- distributed


def _dist_worker(rank: int, port: int, home: str, fake, real, parse, keys, out_dir: str) -> None:
    import torch.distributed as dist

    os.environ["TORCH_HOME"] = home
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    suite = MetricSuite(SuiteOptions(fid_dims=64))
    half = slice(rank * 2, rank * 2 + 2)
    suite.update(fake[half], real[half], keys[half], parse[half])
    suite.all_reduce()
    torch.save(suite.compute(), Path(out_dir) / f"rank{rank}.pt")
    dist.destroy_process_group()


def test_two_gloo_ranks_give_the_single_rank_numbers(metric_torch_home, tmp_path):
    import torch.multiprocessing as mp

    fake, real = _images(20), _images(21)
    parse = torch.randint(0, 3, (4, H, W))
    keys = ["a", "b", "c", "d"]
    single = MetricSuite(SuiteOptions(fid_dims=64))
    single.update(fake[:3], real[:3], keys[:3], parse[:3])
    single.update(fake[3:], real[3:], keys[3:], parse[3:])
    expected = single.compute()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.spawn(_dist_worker, args=(port, str(metric_torch_home), fake, real, parse, keys, str(tmp_path)), nprocs=2)
    for rank in (0, 1):
        got = torch.load(tmp_path / f"rank{rank}.pt")
        assert got.keys() == expected.keys()
        for name, value in expected.items():
            assert got[name] == pytest.approx(value, rel=1e-6, abs=1e-9), name


# ---------------------------------------------------------------------------------- bad input


def test_bad_inputs_raise_clear_errors(tmp_path):
    a = _images(30, 2)
    with pytest.raises(ValueError, match="same shape"):
        ssim_per_image(a, a[:, :, :32])
    suite = MetricSuite.__new__(MetricSuite)  # checks run before any network is touched
    suite.options, suite.image_size = SuiteOptions(), None
    nan = a.clone()
    nan[1, 0, 3, 3] = float("nan")
    with pytest.raises(MetricInputError, match="1 of 2 images contain NaN"):
        suite.update(nan, a, ["x", "y"], torch.zeros(2, H, W))
    with pytest.raises(MetricInputError, match="same shape"):
        suite.update(a, a[:, :, :32], ["x", "y"], torch.zeros(2, H, W))
    with pytest.raises(MetricInputError, match=r"\[0, 1\]"):
        suite.update(a * 2 - 1, a, ["x", "y"], torch.zeros(2, H, W))
    with pytest.raises(MetricInputError, match="mask: expected shape"):
        apply_mask(a, torch.ones(2, H, W // 2))
    (tmp_path / "empty").mkdir()
    _write_folder(tmp_path / "real", a)
    with pytest.raises(MetricInputError, match="no images"):
        next(iter_folder_pairs(tmp_path / "empty", tmp_path / "real"))
    _write_folder(tmp_path / "small", a[:, :, :32])
    with pytest.raises(MetricInputError, match="000.png"):
        next(iter_folder_pairs(tmp_path / "small", tmp_path / "real"))


def test_missing_weights_name_the_file_and_the_command(tmp_path, monkeypatch):
    from vton_models.metrics.networks import InceptionFeatures

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(weights.MissingWeightsError, match="pt_inception-2015-12-05-6726825d.pth.*vton weights prepare"):
        InceptionFeatures()


# ----------------------------------------------------------- independent implementations (torchmetrics)


def test_ms_ssim_agrees_with_torchmetrics():
    """Per channel (ours averages the channels' MS-SSIM; torchmetrics pools them before the powers,
    the same on one channel), with our renormalised weights for the scales that fit. The last
    scales differ by border handling (torchmetrics reflect-pads): under 1e-3 at 256x192, where a
    wrong weight, a missing pooling or an unclamped contrast term moves it by 1e-2 or more."""
    from torchmetrics.functional.image import multiscale_structural_similarity_index_measure as reference

    from vton_models.metrics.paired import MS_SSIM_WEIGHTS, ms_ssim_scales

    g = torch.Generator().manual_seed(3)
    a = torch.rand(3, 3, 256, 192, generator=g, dtype=torch.float64)
    b = (a + 0.1 * torch.randn(a.shape, generator=g, dtype=torch.float64)).clamp(0, 1)
    scales = ms_ssim_scales(256, 192)
    betas = torch.tensor(MS_SSIM_WEIGHTS[:scales], dtype=torch.float64)
    betas = tuple((betas / betas.sum()).tolist())
    theirs = torch.stack([
        torch.stack([reference(a[i:i + 1, c:c + 1], b[i:i + 1, c:c + 1], data_range=1.0, kernel_size=11, sigma=1.5,
                               betas=betas, normalize="relu") for c in range(3)]).mean()
        for i in range(a.shape[0])])
    ours = ms_ssim_per_image(a, b).double()
    assert torch.allclose(ours, theirs, atol=1e-3), (ours, theirs)


def test_kid_and_is_agree_with_torchmetrics_on_the_same_features():
    """The same Inception features and logits into both: KID over the whole sets (one subset of all
    images, so neither side's sampling matters) and IS in one split agree to float64 precision."""
    from torchmetrics.image.inception import InceptionScore
    from torchmetrics.image.kid import KernelInceptionDistance

    from vton_models.metrics.distribution import FeatureReservoir, kernel_inception_distance

    class Given(torch.nn.Module):  # torchmetrics' feature extractor: the features are the input
        num_features = 64

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x

    g = torch.Generator().manual_seed(5)
    fake = torch.randn(40, 64, generator=g, dtype=torch.float64)
    real = torch.randn(40, 64, generator=g, dtype=torch.float64) + 0.3
    ours_fake, ours_real = FeatureReservoir(dim=64), FeatureReservoir(dim=64)
    ours_fake.update(fake, [f"f{i}" for i in range(40)])
    ours_real.update(real, [f"r{i}" for i in range(40)])
    kid = KernelInceptionDistance(feature=Given(), subsets=1, subset_size=40)
    kid.update(fake, real=False)
    kid.update(real, real=True)
    assert kernel_inception_distance(ours_fake, ours_real, subsets=1, subset_size=40) == pytest.approx(
        float(kid.compute()[0]), rel=1e-9)

    logits = torch.randn(50, 1008, generator=g, dtype=torch.float64) * 3
    ours = InceptionScoreStats()
    ours.update(logits)
    inception_score = InceptionScore(feature=Given(), splits=1)
    inception_score.update(logits)
    assert ours.score() == pytest.approx(float(inception_score.compute()[0]), rel=1e-9)
