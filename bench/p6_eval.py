"""P6: images/s of `vton eval`'s metric computation vs the usual three separate tools.

Same folders (N fake and N real 8-bit PNGs at HxW) for both sides:

* ours: ``MetricSuite`` (what each `vton eval` worker runs): PNG decode, SSIM, MS-SSIM, PSNR, L1,
  LPIPS, mask-SSIM, FID, KID, IS, mask-IS, one Inception pass per image set + one for mask-IS;
* baseline: ``python -m pytorch_fid FAKE REAL`` (its CLI, subprocess) + a plain per-image
  ``lpips.LPIPS`` loop + a per-image ``skimage.metrics.structural_similarity`` loop (FID, LPIPS and
  SSIM only: fewer metrics than ours).

Both include model loading. Weights are random (this machine has no network); speed does not
depend on the values. Measure at ``--fid-dims 2048`` (the protocol, the default): below it
pytorch-fid's CLI stops InceptionV3 after its first blocks, while ours still runs the whole network
for IS, so a smaller value compares different amounts of work. Usage::

    python bench/p6_eval.py [--n 32] [--size 256x192] [--fid-dims 2048]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=32)
    ap.add_argument("--size", default="256x192")
    ap.add_argument("--fid-dims", type=int, default=2048)
    args = ap.parse_args()
    h, w = (int(v) for v in args.size.split("x"))

    import numpy as np
    import torch
    from PIL import Image

    import vton_models  # noqa: F401
    from plugins.weights import write_metric_weights

    tmp = Path(tempfile.mkdtemp(prefix="p6-"))
    write_metric_weights(tmp / "home")
    os.environ["TORCH_HOME"] = str(tmp / "home")
    rng = np.random.default_rng(0)
    for name in ("fake", "real"):
        (tmp / name).mkdir()
        for i in range(args.n):
            img = rng.integers(0, 256, (h // 8, w // 8, 3), dtype=np.uint8)
            Image.fromarray(img).resize((w, h), Image.BILINEAR).save(tmp / name / f"{i:04d}.png")

    # ---- ours
    from vton_models.metrics import MetricSuite, SuiteOptions
    from vton_models.metrics.folders import iter_folder_pairs

    t0 = time.perf_counter()
    suite = MetricSuite(SuiteOptions(fid_dims=args.fid_dims))
    for fake, real, names in iter_folder_pairs(tmp / "fake", tmp / "real", batch_size=16):
        parse = (real.mean(1) > 0.3).long()  # stand-in foreground for the masked metrics
        suite.update(fake, real, names, parse)
    ours_metrics = suite.compute()
    ours_s = time.perf_counter() - t0

    # ---- baseline: pytorch-fid CLI + lpips loop + skimage loop
    import lpips
    from skimage.metrics import structural_similarity

    t0 = time.perf_counter()
    code = ("import sys, runpy, vton_models; sys.argv = ['pytorch_fid'] + sys.argv[1:]; "
            "runpy.run_module('pytorch_fid', run_name='__main__')")
    out = subprocess.run([sys.executable, "-c", code, "--device", "cpu", "--dims", str(args.fid_dims),
                          str(tmp / "fake"), str(tmp / "real")], capture_output=True, text=True, check=True)
    fid = float(out.stdout.strip().split("FID:")[-1])
    model = lpips.LPIPS(net="alex", verbose=False).eval()
    lp, ss = [], []
    for name in sorted(os.listdir(tmp / "fake")):
        a = np.asarray(Image.open(tmp / "fake" / name).convert("RGB"))
        b = np.asarray(Image.open(tmp / "real" / name).convert("RGB"))
        ta = torch.from_numpy(a).permute(2, 0, 1)[None].float() / 127.5 - 1
        tb = torch.from_numpy(b).permute(2, 0, 1)[None].float() / 127.5 - 1
        with torch.no_grad():
            lp.append(model(ta, tb).item())
        ss.append(structural_similarity(a, b, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                                        data_range=255, channel_axis=-1))
    base_s = time.perf_counter() - t0

    result = {
        "benchmark": "p6_eval", "images": args.n, "size": [h, w], "fid_dims": args.fid_dims,
        "ours_seconds": round(ours_s, 2), "ours_images_per_s": round(args.n / ours_s, 3),
        "baseline_seconds": round(base_s, 2), "baseline_images_per_s": round(args.n / base_s, 3),
        "ratio": round(base_s / ours_s, 3),
        "ours_metrics": sorted(k for k in ours_metrics), "baseline_metrics": ["fid", "lpips", "ssim"],
        "check": {"fid_ours": ours_metrics["fid"], "fid_cli": fid, "lpips_ours": ours_metrics["lpips"],
                  "lpips_loop": float(np.mean(lp)), "ssim_ours": ours_metrics["ssim"], "ssim_skimage": float(np.mean(ss))},
        "machine": {"cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(), "python": platform.python_version(),
                    "loadavg_at_end": [round(v, 2) for v in os.getloadavg()]},
        "command": "python bench/p6_eval.py " + " ".join(sys.argv[1:]),
    }
    (REPO / "bench" / "results").mkdir(exist_ok=True)
    (REPO / "bench" / "results" / "p6_eval.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
