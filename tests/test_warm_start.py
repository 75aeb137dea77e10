"""Registered stages hold every network; a later run starts trainable networks from them (model.init).

A tiny ``unet_sa`` stage is trained in-process and registered through the trainer's own export
(``GanLoop._export`` -> ``MlflowTracker.log_stage``) on the real MLflow server. A second run starts G
and D from it and must hold exactly those weights at step 0; its D then trains. Mismatches are
errors that name the key before any worker starts. A model whose pickled class no longer exists is
rebuilt from the stage's plain state dicts.
"""

from __future__ import annotations

import sys
import uuid
from pathlib import Path

import pytest
import torch

from orchestrator.config import ConfigError, load_config
from plugins.data import local_shards

REPO = Path(__file__).resolve().parents[1]


def _config(root: Path, name: str, *overrides: str):
    return load_config(REPO / "configs" / "unet_sa" / "demo.yaml", [
        f"data.manifest=file://{root}/shards/train/manifest.json", "data.val_manifest=", "data.loader_workers=0",
        "data.augment=false", "data.batch_size=2", "model.ngf=8", "model.ndf=8", "precision.mode=fp32",
        "train.steps=2", "train.grad_accum=1", "train.log_every=1", "train.sample_every=0",
        "checkpoint.every_n_steps=1000", "tracking.experiment=vton-tests", "tracking.system_metrics=false",
        f"tracking.model_name={name}", f"name={name}-{uuid.uuid4().hex[:6]}", *overrides,
    ])


def _states(loop) -> dict[str, dict[str, torch.Tensor]]:
    return {spec.name: {k: v.detach().clone() for k, v in loop.strategy.module(spec.name).state_dict().items()}
            for spec in loop.recipe.networks}


@pytest.fixture(scope="module")
def source(stack, tmp_path_factory):
    """A registered unet_sa stage (trained 2 steps, with EMA) and the weights it ended with."""
    from mlflow import MlflowClient

    from orchestrator.train.loop import GanLoop, WorkerContext

    root = local_shards(tmp_path_factory.mktemp("warm"), n=8, size=(64, 48), seed=4)
    name = f"vton-test-warm-{uuid.uuid4().hex[:6]}"
    loop = GanLoop(_config(root, name, "train.ema_decay=0.5"), WorkerContext())
    result = loop.run()
    MlflowClient().set_registered_model_alias(name, "champion", result.model_version)
    return {"root": root, "name": name, "version": result.model_version, "trained": _states(loop),
            "ema": {k: v.clone() for k, v in loop.emas["G"].module.state_dict().items()}}


def test_a_registered_stage_holds_every_network_and_serves_its_generator(source, monkeypatch):
    """... and loading it fetches only what it uses: the state dicts, or the MLmodel and the pickled
    modules (not the model's copy of vton_models, ~75 files, each a request to the tracking server)."""
    import mlflow.artifacts

    from orchestrator.registry.models import load_network_weights, load_registered

    fetched, download = [], mlflow.artifacts.download_artifacts
    monkeypatch.setattr(mlflow.artifacts, "download_artifacts",
                        lambda artifact_uri, **kw: fetched.append(artifact_uri) or download(artifact_uri, **kw))
    uri = f"models:/{source['name']}/{source['version']}"
    weights, cfg = load_network_weights(uri)
    assert fetched == [f"{uri}/extra_files/stage_weights.pt"]
    assert set(weights) == {"G", "D", "ema/G"} and cfg.model.recipe == "unet_sa"
    for network in ("G", "D"):
        assert all(torch.equal(weights[network][k], v) for k, v in source["trained"][network].items())
    assert all(torch.equal(weights["ema/G"][k], v) for k, v in source["ema"].items())
    model = load_registered(f"models:/{source['name']}@champion")
    assert fetched[1:] == [f"{uri}/MLmodel", f"{uri}/data"]
    assert list(model.networks) == ["G"]  # what generation runs: the EMA generator
    assert all(torch.equal(model.generator.state_dict()[k], v) for k, v in source["ema"].items())
    for form in (f"models:/{source['name']}@champion", f"models:/{source['name']}"):  # pinned first
        assert set(load_network_weights(form)[0]) == {"G", "D", "ema/G"}, form
    assert fetched[3:] == [f"{uri}/extra_files/stage_weights.pt"] * 2


def test_a_run_starts_g_and_d_from_the_registered_stage_and_trains_them(source):
    from orchestrator.jobs.preflight import preflight
    from orchestrator.train.loop import GanLoop, WorkerContext

    cfg = _config(source["root"], f"{source['name']}-next", "tracking.enabled=false",
                  f"model.init.G=models:/{source['name']}@champion", f"model.init.D=models:/{source['name']}@champion")
    preflight(cfg, where=0)
    pinned = f"models:/{source['name']}/{source['version']}"
    assert cfg.model.init == {"G": pinned, "D": pinned}  # the alias may move later; the run names the version
    loop = GanLoop(cfg, WorkerContext())
    at_start = _states(loop)
    for network in ("G", "D"):
        assert all(torch.equal(at_start[network][k], v) for k, v in source["trained"][network].items()), network
    loop.run()
    after = _states(loop)
    assert any(not torch.equal(after["D"][k], at_start["D"][k]) for k in at_start["D"]), "D did not train"
    assert any(not torch.equal(after["G"][k], at_start["G"][k]) for k in at_start["G"]), "G did not train"


def test_a_network_can_start_from_another_network_of_the_stage(source):
    from orchestrator.train.loop import GanLoop, WorkerContext

    cfg = _config(source["root"], f"{source['name']}-ema", "tracking.enabled=false",
                  f"model.init.G=models:/{source['name']}/{source['version']}#ema/G")
    loop = GanLoop(cfg, WorkerContext())
    assert all(torch.equal(loop.strategy.module("G").state_dict()[k], v) for k, v in source["ema"].items())


@pytest.mark.parametrize("overrides, message", [
    (["model.init.E=models:/{name}/1"], r"model.init.E: recipe 'unet_sa' has no network 'E' \(its networks: G, D\)"),
    (["model.init.G=models:/{name}/1#Q"], r"model.init.G: models:/\S+ holds no network 'Q'; it holds D, G, ema/G"),
    (["model.init.G=models:/{name}/1#D"], r"model.init.G: network 'D' of models:/\S+ does not fit this recipe's "
                                           r"network: missing keys .*unexpected keys"),
    (["model.init.G=models:/vton-no-such-stage@champion"], r"model.init.G: .*not found in the MLflow registry"),
    # runs:/ is a model reference MLflow users pass (issue 20); this one names no run.
    (["model.init.G=runs:/abc/generator"], r"model.init.G: .*not found in the MLflow registry .*Run with id=abc"),
    (["model.init.G=s3://bucket/generator.pt"], r"model.init.G: got 's3://bucket/generator.pt'; expected models:/"),
])
def test_warm_start_errors_name_the_key_before_any_worker(source, overrides, message):
    from orchestrator.jobs.preflight import preflight

    with pytest.raises(ConfigError, match=message):
        preflight(_config(source["root"], "x", *[o.format(name=source["name"]) for o in overrides]), where=0)


def test_a_model_whose_class_moved_is_rebuilt_from_its_state_dicts(source, tmp_path, monkeypatch):
    """A registered model pickles its network by class path; after that class moves (as the families
    did in this project's history) the generator is rebuilt from ``stage_weights.pt``."""
    from orchestrator.config import load_config as load
    from orchestrator.recipes import build_recipe_from_config
    from orchestrator.registry.models import load_registered
    from orchestrator.registry.tracking import MlflowTracker

    module = tmp_path / "vton_moved_network.py"
    module.write_text("from vton_models.families.unet_sa.networks import UnetSAGenerator\n\n\n"
                      "class MovedGenerator(UnetSAGenerator):\n    pass\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    import vton_moved_network

    name = f"vton-test-moved-{uuid.uuid4().hex[:6]}"
    cfg = load(None, ["model.recipe=unet_sa", "model.ngf=8", "model.ndf=8", "data.image_size=64x48",
                      "tracking.experiment=vton-tests", f"tracking.model_name={name}", "tracking.system_metrics=false",
                      f"name={name}"])
    reference = build_recipe_from_config(cfg).build_networks()["G"]
    moved = vton_moved_network.MovedGenerator.__new__(vton_moved_network.MovedGenerator)
    moved.__dict__.update(reference.__dict__)
    tracker = MlflowTracker(cfg, None)
    version = tracker.log_generator(moved, cfg, {})
    tracker.close()
    module.unlink()
    monkeypatch.delitem(sys.modules, "vton_moved_network")
    model = load_registered(f"models:/{name}/{version}")
    assert type(model.generator).__name__ == "UnetSAGenerator"
    assert all(torch.equal(model.generator.state_dict()[k], v) for k, v in reference.state_dict().items())
