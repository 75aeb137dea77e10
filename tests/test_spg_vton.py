"""Seed 004 (``spg_vton``): the semantic prediction step learns in-process on synthetic MPV triplets
through the same loop, stream and representation a Ray job uses."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import vton_models  # noqa: F401  - first, so torchvision imports on CPU-only torch
from orchestrator.config import load_config


def _config(root: Path, recipe: str, steps: int, *overrides: str):
    return load_config(None, [
        f"model.recipe={recipe}", "data.image_size=64x64", f"data.manifest=file://{root}/shards/train/manifest.json",
        f"data.val_manifest=file://{root}/shards/test/manifest.json", "data.batch_size=4", "data.loader_workers=0",
        "data.augment_options={swap_p: 0.5}", "tracking.enabled=false", "precision.mode=fp32", f"train.steps={steps}",
        "train.sample_every=0", f"train.eval_every={steps}", "train.eval_batches=3", "train.log_every=20",
        "train.lr_g=1e-3", "train.lr_d=1e-3", *overrides])


def test_source_semantics_drop_hair_face_and_garment_and_keep_their_masks():
    from vton_models.families.spg_vton.recipes import source_semantics

    labels = torch.tensor([[[0, 2, 13, 5, 6, 7, 14, 9]]])
    onehot = torch.nn.functional.one_hot(labels, 20).permute(0, 3, 1, 2).float()
    reduced, face_hair = source_semantics(onehot)
    assert reduced.argmax(1).tolist() == [[[0, 0, 0, 0, 0, 0, 14, 9]]] and torch.equal(reduced.sum(1), torch.ones(1, 1, 8))
    assert face_hair[0, 0].tolist() == [[0, 0, 1, 0, 0, 0, 0, 0]] and face_hair[0, 1].tolist() == [[0, 1, 0, 0, 0, 0, 0, 0]]


def test_semantic_step_learns_the_target_parse_with_the_papers_optimizer(mpv_shards):
    from orchestrator.train.loop import GanLoop, WorkerContext
    from orchestrator.train.optim import resolve_optimizers

    cfg = _config(mpv_shards, "spg_vton.sem", 60, "model.ngf=8", "model.ndf=8")
    loop = GanLoop(cfg, WorkerContext())
    paper = resolve_optimizers(_config(mpv_shards, "spg_vton.sem", 1, "train.lr_g=null", "train.lr_d=null"), loop.recipe)
    assert {n: (o.lr, o.betas, o.weight_decay) for n, o in paper.items()} == {
        "G": (2e-4, (0.0, 0.999), 5e-4), "D": (2e-4, (0.0, 0.999), 5e-4)}
    result = loop.run()
    before, after = result.val_before, result.val_after
    assert after["val/pixel_accuracy"] > before["val/pixel_accuracy"] + 0.2, (before, after)
    assert {"s_focal", "s_recon", "s_adv", "d_real", "d_fake", "gp"} <= {k.rsplit("/", 1)[-1] for k in result.last_metrics}
    with pytest.raises(ValueError, match="model.head: 'soft' is not one of"):
        from orchestrator.recipes import build_recipe_from_config

        build_recipe_from_config(_config(mpv_shards, "spg_vton.sem", 1, "model.head=soft"))
