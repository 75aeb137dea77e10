"""The sample grids a run logs to MLflow: the same held-out people at every step, labelled columns,
cells large enough to judge a garment by; the training batch's grid beside them."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]


def test_heldout_grid_shows_the_same_people_at_every_step(stack, tmp_path):
    from mlflow import MlflowClient

    import vton_models  # noqa: F401
    from orchestrator.config import load_config
    from orchestrator.registry.tracking import MIN_CELL_HEIGHT
    from orchestrator.train.loop import GanLoop, WorkerContext
    from plugins.data import local_shards

    root = local_shards(tmp_path / "data", n=16, size=(64, 48), seed=4)
    cfg = load_config(REPO / "configs" / "unet_sa" / "demo.yaml", [
        f"data.manifest=file://{root}/shards/train/manifest.json",
        f"data.val_manifest=file://{root}/shards/test/manifest.json", "data.image_size=64x48", "data.batch_size=2",
        "data.loader_workers=0", "model.ngf=8", "model.ndf=8", "precision.mode=fp32", "train.steps=4",
        "train.log_every=2", "train.sample_every=2", "train.eval_every=0", "checkpoint.every_n_steps=1000",
        "tracking.experiment=vton-tests", "tracking.register_model=false", "tracking.system_metrics=false",
        f"name=grids-{tmp_path.name[-8:]}"])
    result = GanLoop(cfg, WorkerContext()).run()
    client = MlflowClient(stack.mlflow_uri)
    images = [a.path for a in client.list_artifacts(result.mlflow_run_id, "images") if a.path.endswith(".png")]
    steps: dict[str, dict[int, np.ndarray]] = {"heldout_samples": {}, "train_samples": {}}
    for path in images:
        key, step = re.match(r"images/(\w+)\+step\+(\d+)\+", path).groups()
        local = client.download_artifacts(result.mlflow_run_id, path, str(tmp_path))
        steps[key][int(step)] = np.asarray(Image.open(local).convert("RGB"))
    assert sorted(steps["heldout_samples"]) == sorted(steps["train_samples"]) == [1, 2, 4]

    first, last = steps["heldout_samples"][1], steps["heldout_samples"][4]
    cell_h = MIN_CELL_HEIGHT  # 64 px rows enlarged 3x
    cell_w = 48 * 3
    assert first.shape == (22 + 4 * cell_h, 4 * cell_w, 3)  # a label row, 4 held-out people, 4 columns
    label_row = first[:22]
    assert (label_row < 128).any() and (label_row > 128).any()  # dark text on white
    truth = slice(3 * cell_w, 4 * cell_w)  # the ground-truth column: the same people at every step
    assert np.array_equal(first[22:, truth], last[22:, truth])
    assert np.array_equal(first[22:, :cell_w], last[22:, :cell_w])  # and their agnostic inputs
    assert not np.array_equal(first[22:, 2 * cell_w:3 * cell_w], last[22:, 2 * cell_w:3 * cell_w])  # it learned
