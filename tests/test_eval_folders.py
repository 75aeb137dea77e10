"""`vton eval --pred-dir DIR --gt-dir DIR`: another project's output folders under our protocol."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import pytest

from shards.synthetic import synthesize


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("folders")
    synthesize(root / "data", n=8, size=(64, 48), seed=2)
    return root / "data" / "test" / "image"


def _evaluate(capsys, *args: str) -> tuple[int, str, str]:
    from orchestrator.cli import main

    capsys.readouterr()
    code = main(["eval", *args, "--fid-dims", "64"])
    out, err = capsys.readouterr()
    return code, out, err


def test_folders_are_scored_with_the_suite_and_paired_by_stem(photos, tmp_path, capsys, metric_torch_home):
    same, blurred = tmp_path / "same", tmp_path / "blurred"
    same.mkdir(), blurred.mkdir()
    for photo in sorted(photos.iterdir()):
        image = cv2.imread(str(photo))
        cv2.imwrite(str(same / f"{photo.stem}.png"), image)  # lossless: exactly the photo
        cv2.imwrite(str(blurred / f"{photo.stem}.png"), cv2.GaussianBlur(image, (7, 7), 3))

    code, out, err = _evaluate(capsys, "--pred-dir", str(same), "--gt-dir", str(photos), "--out", str(tmp_path / "r.json"))
    assert code == 0, err
    result = json.loads((tmp_path / "r.json").read_text())
    metrics = result["metrics"]
    assert metrics["images"] == len(list(photos.iterdir())) and metrics["l1"] == 0 and metrics["ssim"] == pytest.approx(1)
    assert "mask_ssim" not in metrics and result["protocol"]["resolution_hw"] == [64, 48]
    assert {"fid", "kid", "is", "lpips"} <= set(metrics)

    code, out, err = _evaluate(capsys, "--pred-dir", str(blurred), "--gt-dir", str(photos), "--out", str(tmp_path / "b.json"))
    assert code == 0, err
    blurred_metrics = json.loads((tmp_path / "b.json").read_text())["metrics"]
    assert blurred_metrics["ssim"] < 0.99 and blurred_metrics["l1"] > 0 and blurred_metrics["lpips"] > metrics["lpips"]

    (blurred / "stranger.png").write_bytes((same / f"{sorted(photos.iterdir())[0].stem}.png").read_bytes())
    code, out, err = _evaluate(capsys, "--pred-dir", str(blurred), "--gt-dir", str(photos))
    assert code == 2 and "no photo for 1 generated image(s), e.g. stranger" in err, err
    code, out, err = _evaluate(capsys, "--pred-dir", str(blurred), "--gt-dir", str(photos), "--pairs", "unpaired")
    assert code == 0 and "fid" in out and "ssim" not in out, out + err
