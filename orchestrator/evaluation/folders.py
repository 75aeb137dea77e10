"""`vton eval --pred-dir DIR --gt-dir DIR`: score image folders made elsewhere under our protocol.

Other try-on projects evaluate folders of generated images against folders of photos; with this,
their outputs get the same numbers ours do (the same metric suite, quantisation, resize and
Inception features as ``run_eval``), so a paper's released results can sit next to a trained
model's in one table. Without parse maps the masked metrics (mask-SSIM, mask-IS) are not computed.

Paired: every generated image needs the photo of the same file stem in ``--gt-dir`` (the missing
ones are listed). Unpaired: the two folders are two sets of images (FID, KID, IS only), the first n
of each by name, n the smaller set's size.
"""

from __future__ import annotations

import time
from pathlib import Path

import cv2
import numpy as np
import torch

from orchestrator.evaluation.evaluate import ALL_NETWORKS, NETWORK_METRICS, EvalError, EvalResult, protocol_card

def _images(folder: Path, option: str) -> dict[str, Path]:
    """File stem -> image (another project may write .png results for .jpg photos)."""
    from vton_models.metrics.checks import MetricInputError
    from vton_models.metrics.folders import list_images

    try:
        return {p.stem: p for p in list_images(folder)}
    except MetricInputError as exc:
        raise EvalError(f"{option} {exc}") from None


def _read(path: Path, size: tuple[int, int] | None) -> torch.Tensor:
    """(3, H, W) RGB in [0, 1], decoded as pytorch-fid decodes (``vton_models.metrics.folders``),
    resized like the protocol (INTER_AREA to shrink, INTER_LINEAR to enlarge)."""
    from vton_models.metrics.folders import load_image

    try:
        image = load_image(path)
    except OSError as exc:
        raise EvalError(f"{path}: not a readable image ({exc})") from None
    if size is None or tuple(image.shape[1:]) == size:
        return image
    shrink = image.shape[1] * image.shape[2] > size[0] * size[1]
    resized = cv2.resize(image.permute(1, 2, 0).numpy(), (size[1], size[0]),
                         interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
    return torch.from_numpy(np.ascontiguousarray(resized)).permute(2, 0, 1)


def _batch(paths: list[Path], size: tuple[int, int]) -> torch.Tensor:
    return torch.stack([_read(p, size) for p in paths])


def score_folders(pred_dir: str | Path, gt_dir: str | Path, pairs: str = "paired",
                  image_size: tuple[int, int] | None = None, fid_dims: int = 2048, batch_size: int = 8,
                  networks: tuple[str, ...] = ALL_NETWORKS) -> EvalResult:
    """Metrics of the images in ``pred_dir`` against those in ``gt_dir``; ``image_size`` (H, W)
    defaults to the first photo's size."""
    from vton_models.metrics import MetricSuite
    from vton_models.metrics.suite import SuiteOptions

    if pairs not in ("paired", "unpaired"):
        raise EvalError(f"--pairs {pairs!r}: allowed paired, unpaired")
    pred, gt = _images(Path(pred_dir), "--pred-dir"), _images(Path(gt_dir), "--gt-dir")
    if pairs == "paired":
        missing = sorted(set(pred) - set(gt))
        if missing:
            raise EvalError(f"--gt-dir {gt_dir}: no photo for {len(missing)} generated image(s), e.g. "
                            f"{', '.join(missing[:5])} (paired evaluation matches file stems)")
        keys = sorted(pred)
        fakes, reals = [pred[k] for k in keys], [gt[k] for k in keys]
    else:  # two sets: the first n of each in name order, n the smaller set's size (KID pairs them up)
        n = min(len(pred), len(gt))
        keys = sorted(pred)[:n]
        fakes, reals = [pred[k] for k in keys], [gt[k] for k in sorted(gt)[:n]]
    size = image_size or tuple(_read(reals[0], None).shape[1:])
    started = time.monotonic()
    suite = MetricSuite(SuiteOptions(paired=pairs == "paired", masked=False, fid_dims=fid_dims, networks=networks))
    with torch.inference_mode():
        for start in range(0, len(fakes), batch_size):
            suite.update(_batch(fakes[start:start + batch_size], size), _batch(reals[start:start + batch_size], size),
                         keys[start:start + batch_size])
    skipped = [NETWORK_METRICS[n] for n in ALL_NETWORKS if n not in networks]
    card = {**protocol_card(size), "mask": "not computed: folders carry no parse maps",
            "resize": f"cv2.INTER_AREA (shrink) / INTER_LINEAR (enlarge) to {size[0]}x{size[1]}; "
                      "Inception: bilinear to 299x299 inside pytorch-fid",
            "source": f"folders: generated {pred_dir}, photos {gt_dir}", **({"skipped": skipped} if skipped else {})}
    return EvalResult(f"folder {pred_dir}", None, None, str(gt_dir), pairs, 1, time.monotonic() - started,
                      suite.compute(), card)
