"""Seed 002 (``tree_block``): each stage learns in-process on synthetic MPV triplets (representation
``multipose``), through the same loop, stream and representation a Ray job uses; the appearance stage
renders on the frozen parse net and GMM trained just before, as Algorithm 1 does."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import vton_models  # noqa: F401  - first, so torchvision imports on CPU-only torch
from orchestrator.config import load_config
from plugins.data import local_shards
from plugins.weights import torch_home  # noqa: F401

SIZE = "data.image_size=64x64"  # the parse U-Net's six downsamplings need multiples of 64


@pytest.fixture(scope="module")
def mpv_shards(tmp_path_factory) -> Path:
    return local_shards(tmp_path_factory.mktemp("tree_block"), 24, (64, 64), 8, layout="mpv_triplets", synthetic="mpv")


def _config(root: Path, recipe: str, steps: int, *overrides: str):
    return load_config(None, [
        f"model.recipe={recipe}", SIZE, f"data.manifest=file://{root}/shards/train/manifest.json",
        f"data.val_manifest=file://{root}/shards/test/manifest.json", "data.batch_size=4", "data.loader_workers=0",
        "data.augment_options={swap_p: 0.5}", "tracking.enabled=false", "precision.mode=fp32", f"train.steps={steps}",
        "train.sample_every=0", f"train.eval_every={steps}", "train.eval_batches=3", "train.log_every=20",
        "train.lr_g=1e-3", "train.lr_d=1e-3", *overrides])


@pytest.fixture(scope="module")
def trained_parse(mpv_shards):
    from orchestrator.train.loop import GanLoop, WorkerContext

    loop = GanLoop(_config(mpv_shards, "tree_block.parse", 60, "model.ngf=8", "model.ndf=8"), WorkerContext())
    return loop, loop.run()


@pytest.fixture(scope="module")
def trained_gmm(mpv_shards):
    from orchestrator.train.loop import GanLoop, WorkerContext

    loop = GanLoop(_config(mpv_shards, "tree_block.gmm", 40, "model.ngf=8"), WorkerContext())
    return loop, loop.run()


def test_parse_stage_learns_the_target_parse(trained_parse):
    _, result = trained_parse
    before, after = result.val_before, result.val_after
    assert after["val/pixel_accuracy"] > before["val/pixel_accuracy"] + 0.2, (before, after)
    assert {"ce", "adv", "d_real", "d_fake"} <= {k.rsplit("/", 1)[-1] for k in result.last_metrics}


def test_gmm_stage_learns_its_warp(trained_gmm):
    loop, result = trained_gmm
    before, after = result.val_before, result.val_after
    assert after["val/l1"] < before["val/l1"], (before, after)  # held-out warp L1 falls
    assert loop.recipe.teacher_forcing() and not loop.recipe.tries_on


def test_appearance_stage_learns_on_the_frozen_parse_and_gmm(mpv_shards, trained_parse, trained_gmm):
    from orchestrator.train.loop import GanLoop, WorkerContext

    loop = GanLoop(_config(mpv_shards, "tree_block.app", 50, "model.ngf=8", "model.ndf=8", "model.n_blocks=2",
                           "loss.weights.feat=0", "loss.weights.style=0"), WorkerContext())
    with pytest.raises(ValueError, match="tree_block.app' needs model.parse"):
        loop.recipe.inputs({})
    frozen = {}
    for key, (stage_loop, _) in (("parse", trained_parse), ("gmm", trained_gmm)):
        net = stage_loop.generators()["G"]
        loop.recipe.attach_stage(key, stage_loop.recipe, {"G": net})
        frozen[key] = [p.clone() for p in net.parameters()]
    result = loop.run()
    before, after = result.val_before, result.val_after
    assert after["val/l1"] < before["val/l1"] and after["val/ssim"] > before["val/ssim"], (before, after)
    for key, (stage_loop, _) in (("parse", trained_parse), ("gmm", trained_gmm)):
        assert all(torch.equal(a, b) for a, b in zip(frozen[key], stage_loop.generators()["G"].parameters()))
    assert loop.recipe.teacher_forcing() is None and loop.recipe.tries_on


def test_summary_shows_the_specs_parameter_counts_and_options_are_checked(mpv_shards, capsys, monkeypatch):
    from orchestrator.cli import main
    from orchestrator.jobs.pipeline import load_stages
    from orchestrator.recipes import build_recipe_from_config

    expected = {"tree_block.parse": ("21,382,036", "2,821,185"), "tree_block.gmm": ("19,055,602",),
                "tree_block.app": ("25,610,884", "2,766,913")}
    for recipe, counts in expected.items():
        assert main(["models", "summary", recipe]) == 0
        out = capsys.readouterr().out
        assert all(f"{c} parameters" in out for c in counts), out
    assert main(["models", "summary", "tree_block.app", "model.block=resnet"]) == 0  # SRB-VTON
    assert "11,448,196 parameters" in capsys.readouterr().out

    for overrides, message in (
            (("model.tree_dilations=[1, 2, 4]",), r"model.tree_dilations: expected a power-of-two count"),
            (("model.block=dense",), r"model.block: 'dense' is not one of \['tree', 'resnet'\]"),
            (("model.atten_target=ones",), r"model.atten_target: 'ones' is not one of"),
            (("data.image_size=64x48",), r"image_size \(64, 48\) must be divisible by 64")):
        recipe = "tree_block.parse" if "image_size" in overrides[0] else "tree_block.app"
        with pytest.raises(ValueError, match=message):
            build_recipe_from_config(_config(mpv_shards, recipe, 1, *overrides))

    monkeypatch.setenv("VTON_BUCKET", "my-bucket")
    stages = load_stages(Path(__file__).resolve().parents[1] / "configs" / "tree_block")
    assert [s.name for s in stages][-1] == "app" and {s.name for s in stages} == {"parse", "gmm", "app"}
    assert stages[-1].needs() == {"model.parse": "tree_block.parse", "model.gmm": "tree_block.gmm"}
    assert all(s.cfg.data.augment_options == {"hflip_p": 0.5, "swap_p": 0.5} for s in stages)


def test_no_generator_term_dominates_the_adversarial_one_at_initialisation(mpv_shards, torch_home):  # noqa: F811
    """The paper gives no loss weights. With the defaults, at initialisation (default widths, the
    mean of two initialisations), no weighted G term exceeds 10x the adversarial term (the VGG terms
    here use random weights)."""
    from orchestrator.recipes import build_recipe_from_config
    from orchestrator.train.data import make_val_stream

    cfg = {r: _config(mpv_shards, f"tree_block.{r}", 1) for r in ("parse", "gmm", "app")}
    recipes = {r: build_recipe_from_config(c) for r, c in cfg.items()}
    batch = next(iter(make_val_stream(cfg["parse"], recipes["parse"], 0, 1).iter_from()))
    weighted: dict[str, dict[str, float]] = {"parse": {}, "app": {}}
    for seed in (0, 1):
        torch.manual_seed(seed)
        nets = {r: recipe.build_networks() for r, recipe in recipes.items()}
        for key in ("parse", "gmm"):
            recipes["app"].attach_stage(key, recipes[key], nets[key])
        for stage, sums in weighted.items():
            recipe = recipes[stage]
            with torch.no_grad():
                terms, _ = recipe.g_losses(nets[stage], recipe.inputs(batch))
            for k, v in terms.items():
                sums[k] = sums.get(k, 0.0) + float(v) * recipe.loss_weights[k] / 2
    for stage, mean in weighted.items():
        print(stage, {k: round(v, 3) for k, v in mean.items()})
        assert set(mean) == set(recipes[stage].loss_weights) - {"d_real", "d_fake"}
        assert max(mean.values()) <= 10 * mean["adv"], (stage, mean)

