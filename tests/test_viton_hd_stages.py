"""ALIAS consumes a GMM registered in MLflow (`model.gmm: models:/NAME@ALIAS`), pinned to a version."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import numpy as np
import pytest
import torch

from orchestrator.config import ConfigError, load_config
from plugins.data import local_shards

SIZE = "data.image_size=128x96"  # the GMM needs inputs of at least 64x64


def _register(stack, recipe: str, *overrides: str) -> str:
    """A tiny untrained network of ``recipe`` registered through vton's tracking; returns its name."""
    from orchestrator.recipes import build_recipe_from_config
    from orchestrator.registry.tracking import MlflowTracker

    name = f"vton-test-stage-{uuid.uuid4().hex[:6]}"
    cfg = load_config(None, [f"model.recipe={recipe}", SIZE, "tracking.experiment=vton-tests",
                             f"tracking.model_name={name}", "tracking.system_metrics=false", f"name={name}",
                             *overrides])
    network = build_recipe_from_config(cfg).build_networks()["G"]
    tracker = MlflowTracker(cfg, None)
    tracker.log_generator(network, cfg, {"run_name": name})
    tracker.close()
    return name


@pytest.fixture(scope="module")
def registered(stack, tmp_path_factory):
    from mlflow import MlflowClient

    import vton_models  # noqa: F401

    gmm = _register(stack, "viton_hd.gmm", "model.ngf=8", "model.work_size=null")
    MlflowClient().set_registered_model_alias(gmm, "champion", "1")
    unet = _register(stack, "unet_sa", "model.ngf=8", "model.ndf=8")
    root = local_shards(tmp_path_factory.mktemp("stages"), n=8, size=(128, 96), seed=2)
    return {"gmm": gmm, "unet": unet, "root": root}


def _alias_config(root: Path, gmm_uri: str):
    return load_config(None, [
        "model.recipe=viton_hd.alias", f"model.gmm={gmm_uri}", SIZE, "model.ngf=4", "model.norm_hidden=8",
        "model.num_upsampling_layers=normal", "model.ndf=8", "loss.weights.vgg=0",
        f"data.manifest=file://{root}/shards/train/manifest.json", "data.val_manifest=", "data.batch_size=2",
        "data.loader_workers=0", "tracking.enabled=false", "precision.mode=fp32", "train.steps=1",
        "train.sample_every=0", "checkpoint.every_n_steps=1000",
    ])


def test_alias_trains_on_the_registered_gmm_pinned_to_the_version_the_alias_named(registered):
    from orchestrator.train.data import make_train_stream
    from orchestrator.jobs.preflight import preflight
    from orchestrator.train.loop import GanLoop, WorkerContext

    cfg = _alias_config(registered["root"], f"models:/{registered['gmm']}@champion")
    preflight(cfg, where=0)
    assert cfg.model.options["gmm"] == f"models:/{registered['gmm']}/1"  # pinned: @champion may move later
    assert cfg.to_dict()["model"]["gmm"] == f"models:/{registered['gmm']}/1"  # what workers and MLflow get

    loop = GanLoop(cfg, WorkerContext())
    gmm_recipe, gmm = loop.recipe.frozen_gmm
    assert not any(p.requires_grad for p in gmm.parameters())
    batch = next(iter(make_train_stream(cfg, loop.recipe, 0, 1).iter_from_batches(0)))
    batch = {k: v for k, v in batch.items() if torch.is_tensor(v)}
    inputs = loop.recipe.inputs(batch)
    _, warped, _ = gmm_recipe.warp(gmm, gmm_recipe.inputs(batch))
    assert torch.equal(inputs["warped"], warped)  # ALIAS sees the GMM's warp, not the ground truth
    assert not torch.equal(inputs["warped"], inputs["warped_cloth"])
    before = [p.clone() for p in gmm.parameters()]
    assert loop.run().steps_run == 1
    assert all(torch.equal(a, b) for a, b in zip(before, gmm.parameters()))  # frozen through training
    assert loop.data_tags["vton.data.pose_img"] == "dataset"  # OpenPose renderings, as the official nets saw
    assert "registered GMM's warp" in loop.data_tags["vton.teacher_forcing"]  # said where MLflow users look


def test_a_wrong_or_missing_stage_is_a_config_error_naming_the_key(registered):
    from orchestrator.jobs.preflight import preflight

    with pytest.raises(ConfigError, match=r"model.gmm: .* is a 'unet_sa' model; recipe 'viton_hd.alias' needs "
                                          r"a 'viton_hd.gmm' model"):
        preflight(_alias_config(registered["root"], f"models:/{registered['unet']}/1"), where=0)
    with pytest.raises(ConfigError, match=r"model.gmm: .*not found in the MLflow registry"):
        preflight(_alias_config(registered["root"], "models:/vton-no-such-gmm@champion"), where=0)


def test_imported_official_gmm_is_registered_with_its_config_so_alias_can_consume_it(registered, tmp_path, capsys):
    from orchestrator.cli import main
    from orchestrator.registry.models import load_registered
    from orchestrator.jobs.preflight import preflight
    from orchestrator.recipes import build_recipe_from_config
    from orchestrator.registry.stages import attach_consumed_stages
    from vton_models.families.viton_hd.importer import build_official

    torch.manual_seed(0)
    released = build_official("gmm").state_dict()  # the official key set and shapes (test_viton_hd_models)
    torch.save(released, tmp_path / "gmm_final.pth")
    prefix = f"vton-test-import-{uuid.uuid4().hex[:6]}"
    code = main(["import", "viton-hd", "--gmm", str(tmp_path / "gmm_final.pth"), "--register",
                 "--name-prefix", prefix])
    assert code == 0, capsys.readouterr().err
    assert f"registered models:/{prefix}-gmm/1 as models:/{prefix}-gmm@champion" in capsys.readouterr().out

    model = load_registered(f"models:/{prefix}-gmm@champion")
    assert model.config.model.recipe == "viton_hd.gmm" and list(model.config.data.image_size) == [1024, 768]
    assert all(torch.equal(model.generator.state_dict()[k], v) for k, v in released.items())

    cfg = _alias_config(registered["root"], f"models:/{prefix}-gmm@champion")
    preflight(cfg, where=0)
    recipe = build_recipe_from_config(cfg)
    attach_consumed_stages(recipe)
    gmm_recipe, gmm = recipe.frozen_gmm
    assert gmm_recipe.name == "viton_hd.gmm" and sum(p.numel() for p in gmm.parameters()) == 19_042_290


# ------------------------------------------------------------------ the try-on chain, end to end

#: A tiny VITON-HD trained with other options than the official ones (`vton import --set`).
CHAIN_SET = ("data.image_size=64x64", "seg:model.ngf=8", "seg:model.work_size=null", "gmm:model.ngf=8",
             "gmm:model.work_size=null", "alias:model.ngf=4", "alias:model.norm_hidden=8",
             "alias:model.num_upsampling_layers=normal")


@pytest.fixture(scope="module")
def imported_chain(stack, tmp_path_factory):
    """Released-format checkpoints of all three stages imported with --register: the stages and the
    try-on chain ``<prefix>@champion``; plus a synthetic test folder at the same size."""
    from orchestrator.cli import main
    from orchestrator.recipes import build_recipe_from_config
    from orchestrator.registry.importing import stage_config
    from shards.synthetic import synthesize

    tmp = tmp_path_factory.mktemp("released")
    torch.manual_seed(0)
    files = []
    for stage in ("seg", "gmm", "alias"):
        recipe = build_recipe_from_config(stage_config("viton_hd", stage, CHAIN_SET))
        torch.save(recipe.build_networks()["G"].state_dict(), tmp / f"{stage}_final.pth")
        files += [f"--{stage}", str(tmp / f"{stage}_final.pth")]
    prefix = f"vton-test-chain-{uuid.uuid4().hex[:6]}"
    code = main(["import", "viton-hd", *files, "--register", "--name-prefix", prefix,
                 *(arg for item in CHAIN_SET for arg in ("--set", item))])
    assert code == 0
    synthesize(tmp / "data", n=8, size=(64, 64), seed=4)
    return {"prefix": prefix, "test_dir": tmp / "data" / "test", "root": tmp}


def test_import_registers_the_chain_and_tryon_puts_the_given_garment_on(imported_chain, tmp_path, capsys):
    import cv2

    from orchestrator.cli import main
    from orchestrator.registry.models import load_registered

    prefix, test_dir = imported_chain["prefix"], imported_chain["test_dir"]
    chain = load_registered(f"models:/{prefix}@champion")
    assert chain.config.model.recipe == "viton_hd.tryon" and sorted(chain.networks) == ["alias", "gmm", "seg"]
    assert {s: chain.config.model.options[s] for s in ("seg", "gmm", "alias")} == {
        s: f"models:/{prefix}-{s}/1" for s in ("seg", "gmm", "alias")}  # pinned versions
    stage = load_registered(f"models:/{prefix}-alias@champion")
    assert all(torch.equal(chain.networks["alias"].state_dict()[k], v) for k, v in stage.generator.state_dict().items())

    cloths = sorted((test_dir / "cloth").iterdir())
    outputs = []
    for i, cloth in enumerate(cloths[:2]):
        code = main(["tryon", "--model", f"models:/{prefix}@champion", "--person", str(test_dir), "--cloth", str(cloth),
                     "--out", str(tmp_path / f"o{i}")])
        assert code == 0, capsys.readouterr().err
        outputs.append(cv2.imread(str(tmp_path / f"o{i}" / f"{sorted((test_dir / 'image').iterdir())[0].stem}.png")))
    assert outputs[0].shape == (64, 64, 3) and not np.array_equal(outputs[0], outputs[1]), \
        "two garments on one person must give two pictures"

    lonely = tmp_path / "shop" / "c.jpg"  # a garment photo with no mask anywhere
    lonely.parent.mkdir()
    lonely.write_bytes(cloths[0].read_bytes())
    code = main(["tryon", "--model", f"models:/{prefix}@champion", "--person", str(test_dir), "--cloth", str(lonely),
                 "--out", str(tmp_path / "x")])
    err = capsys.readouterr().err
    assert code == 2 and "--cloth-mask" in err and "reads the garment mask" in err and str(lonely.parent.parent) in err


def test_a_teacher_forced_stage_is_no_try_on_model(imported_chain, registered, metric_torch_home, tmp_path, capsys):
    from orchestrator.cli import main

    prefix, test_dir = imported_chain["prefix"], imported_chain["test_dir"]
    cloth = sorted((test_dir / "cloth").iterdir())[0]
    code = main(["tryon", "--model", f"models:/{prefix}-alias@champion", "--person", str(test_dir), "--cloth", str(cloth),
                 "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 2 and "teacher-forced" in err and "models:/vton-viton_hd@champion" in err
    code = main(["tryon", "--model", f"models:/{prefix}-gmm@champion", "--person", str(test_dir), "--cloth", str(cloth),
                 "--out", str(tmp_path / "o")])
    assert code == 2 and "not a try-on" in capsys.readouterr().err

    data = f"file://{registered['root']}/shards/test/manifest.json"
    code = main(["eval", "--model", f"models:/{prefix}-alias@champion", "--data", data, "--no-mlflow", "--fid-dims", "64"])
    assert code == 2 and "--teacher-forced" in capsys.readouterr().err
    code = main(["eval", "--model", f"models:/{prefix}-alias@champion", "--data", data, "--no-mlflow", "--fid-dims", "64",
                 "--teacher-forced", "--out", str(tmp_path / "tf.json")])
    assert code == 0, capsys.readouterr().err
    assert json.loads((tmp_path / "tf.json").read_text())["protocol"]["generated_from"].startswith("TEACHER-FORCED")
    code = main(["eval", "--model", f"models:/{prefix}@champion", "--data", data, "--no-mlflow", "--fid-dims", "64",
                 "--out", str(tmp_path / "chain.json")])
    assert code == 0, capsys.readouterr().err
    assert json.loads((tmp_path / "chain.json").read_text())["protocol"]["generated_from"].startswith("inference chain")


def test_unet_sa_warped_trains_on_the_registered_gmm_pinned_to_its_version(registered):
    """Seed 000 with ``model.garment_input=warped``: G sees the garment as the registered GMM warps it."""
    from orchestrator.jobs.preflight import preflight
    from orchestrator.train.data import make_train_stream
    from orchestrator.train.loop import GanLoop, WorkerContext
    from vton_models.families.unet_sa.inputs import gmm_fields

    root = registered["root"]
    cfg = load_config(None, [
        "model.recipe=unet_sa", "model.garment_input=warped", f"model.gmm=models:/{registered['gmm']}@champion",
        SIZE, "model.variant=reduced", "model.ngf=8", "model.ndf=8", "loss.weights.vgg=0",
        f"data.manifest=file://{root}/shards/train/manifest.json", "data.val_manifest=", "data.batch_size=2",
        "data.loader_workers=0", "tracking.enabled=false", "train.steps=1", "train.sample_every=0",
        "train.eval_every=0", "precision.mode=fp32"])
    preflight(cfg, where=0)
    assert cfg.model.options["gmm"] == f"models:/{registered['gmm']}/1"
    loop = GanLoop(cfg, WorkerContext())
    gmm_recipe, gmm = loop.recipe.frozen_gmm
    batch = next(iter(make_train_stream(cfg, loop.recipe, 0, 1).iter_from_batches(0)))
    batch = {k: v for k, v in batch.items() if torch.is_tensor(v)}
    _, warped, _ = gmm_recipe.warp(gmm, gmm_recipe.inputs(gmm_fields(batch)))
    assert torch.equal(loop.recipe.inputs(batch)["g_input"][:, -3:], warped)
    assert loop.run().steps_run == 1
