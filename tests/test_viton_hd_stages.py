"""ALIAS consumes a GMM registered in MLflow (`model.gmm: models:/NAME@ALIAS`), pinned to a version."""

from __future__ import annotations

import uuid
from pathlib import Path

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
    assert loop.data_tags == {"vton.data.pose_img": "dataset"}  # OpenPose renderings, as the official nets saw


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
