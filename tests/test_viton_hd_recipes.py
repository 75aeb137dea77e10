"""The three VITON-HD stages run in the generic loop on the synthetic set (in-process, tiny widths).

What is checked here: every stage trains (finite losses, weights move) and ALIAS's held-out L1 drops
within a few steps; then each stage learns what it is judged by at the dissertation's batch 1 with
gradient accumulation 4: the seg stage's held-out pixel accuracy and mIoU rise, the GMM's warped-
cloth L1 falls. (fp16 runs under Ray Train are in test_train_ray.py: CPU fp16 is ~30x slower.)
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from plugins.data import local_shards
import torch

from orchestrator.config import load_config
from orchestrator.train.loop import GanLoop, WorkerContext

STAGES = {
    "viton_hd.seg": ["model.ngf=8", "model.ndf=8", "model.work_size=null"],
    "viton_hd.gmm": ["model.ngf=8", "model.work_size=null"],
    "viton_hd.alias": ["model.ngf=4", "model.norm_hidden=8", "model.num_upsampling_layers=normal", "model.ndf=8",
                       "loss.weights.vgg=0"],
}


@pytest.fixture(scope="module")
def shards(tmp_path_factory) -> Path:
    # The GMM needs inputs of at least 64x64.
    return local_shards(tmp_path_factory.mktemp("viton_hd"), n=16, size=(128, 96), seed=1)


@pytest.mark.parametrize("recipe", sorted(STAGES))
def test_stage_trains_in_the_loop(recipe, shards):
    cfg = load_config(None, [
        f"model.recipe={recipe}", f"data.manifest=file://{shards}/shards/train/manifest.json",
        f"data.val_manifest=file://{shards}/shards/test/manifest.json", "data.image_size=128x96",
        "data.batch_size=2", "data.loader_workers=0", "tracking.enabled=false", "precision.mode=fp32",
        "train.steps=3", "train.eval_batches=1", "train.lr_plateau_patience=0", "train.sample_every=0",
        "checkpoint.every_n_steps=1000", *STAGES[recipe],
    ])
    loop = GanLoop(cfg, WorkerContext())
    before = {k: v.clone() for k, v in loop.strategy.module("G").state_dict().items()}
    result = loop.run()
    assert result.steps_run == 3
    losses = {k: v for k, v in result.last_metrics.items() if k.startswith("loss/")}
    assert losses and all(math.isfinite(v) for v in losses.values()), losses
    after = loop.strategy.module("G").state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before if before[k].is_floating_point())
    if recipe == "viton_hd.alias":
        assert result.val_after["val/l1"] < result.val_before["val/l1"]


LEARNING = {  # (stage, steps, metric that must improve, direction, extra overrides)
    "viton_hd.seg": (10, {"val/pixel_accuracy": +1, "val/miou": +1}, ()),
    # At the default 2e-4 the GMM's held-out L1 after 10 steps rose or fell with the torch thread
    # count (0.169 -> 0.225 with 1 thread, -> 0.147 with 2); at 1e-3 it falls with both (0.118, 0.129).
    "viton_hd.gmm": (10, {"val/l1": -1}, ("train.lr_g=1e-3",)),
}


@pytest.mark.parametrize("recipe", sorted(LEARNING))
def test_stage_learns_what_it_is_judged_by_at_batch_1_with_accumulation_4(recipe, shards):
    steps, improves, extra = LEARNING[recipe]
    cfg = load_config(None, [
        f"model.recipe={recipe}", f"data.manifest=file://{shards}/shards/train/manifest.json",
        f"data.val_manifest=file://{shards}/shards/test/manifest.json", "data.image_size=128x96",
        "data.batch_size=1", "train.grad_accum=4", "data.loader_workers=0", "tracking.enabled=false",
        "precision.mode=fp32", f"train.steps={steps}", "train.eval_batches=4", "train.lr_plateau_patience=0",
        "train.sample_every=0", "checkpoint.every_n_steps=1000", *STAGES[recipe], *extra,
    ])
    result = GanLoop(cfg, WorkerContext()).run()
    for metric, sign in improves.items():
        before, after = result.val_before[metric], result.val_after[metric]
        assert sign * (after - before) > 0, f"{metric}: {before:.4f} -> {after:.4f}"
