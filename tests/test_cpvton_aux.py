"""Seed 003 (``cpvton_aux``): both stages learn in-process on the synthetic ``viton`` set (CP-VTON's
layout, COCO-18 poses), through the same loop, stream and representation a Ray job uses."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import vton_models  # noqa: F401  - first, so torchvision imports on CPU-only torch
from orchestrator.config import ConfigError, load_config
from plugins.data import local_shards, shard_to_s3
from plugins.stack import pipeline_with_one_ray_job

SIZE = "data.image_size=64x64"  # TOM's six downsamplings need multiples of 64


@pytest.fixture(scope="module")
def viton_shards(tmp_path_factory) -> Path:
    return local_shards(tmp_path_factory.mktemp("cpvton"), 64, (64, 64), 6, layout="viton")


def _config(root: Path, recipe: str, steps: int, *overrides: str):
    return load_config(None, [
        f"model.recipe={recipe}", SIZE, "model.ngf=8", f"data.manifest=file://{root}/shards/train/manifest.json",
        f"data.val_manifest=file://{root}/shards/test/manifest.json", "data.batch_size=4", "data.loader_workers=0",
        "tracking.enabled=false", "precision.mode=fp32", f"train.steps={steps}", "train.sample_every=0",
        f"train.eval_every={steps}", "train.eval_batches=4", "train.log_every=20", "train.lr.G=1e-3",
        "train.schedule.G=constant", *overrides])


@pytest.fixture(scope="module")
def trained_gmm(viton_shards):
    from orchestrator.train.loop import GanLoop, WorkerContext

    loop = GanLoop(_config(viton_shards, "cpvton_aux.gmm", 80), WorkerContext())
    result = loop.run()
    return loop, result


def test_gmm_stage_learns_its_warp_and_its_auxiliary_parse(trained_gmm):
    loop, result = trained_gmm
    before, after = result.val_before, result.val_after
    assert after["val/l1"] < before["val/l1"], (before, after)  # held-out warp L1 falls
    assert after["val/aux_pixel_accuracy"] > before["val/aux_pixel_accuracy"] + 0.2, (before, after)
    assert any(k.endswith("aux_ce") for k in result.last_metrics), sorted(result.last_metrics)


def test_tom_stage_learns_on_the_frozen_gmms_warps(viton_shards, trained_gmm):
    from orchestrator.train.loop import GanLoop, WorkerContext

    gmm_loop, _ = trained_gmm
    loop = GanLoop(_config(viton_shards, "cpvton_aux.tom", 60, "loss.weights.vgg=0"), WorkerContext())
    with pytest.raises(ValueError, match="cpvton_aux.tom' needs model.gmm"):
        loop.recipe.inputs({})
    gmm = gmm_loop.generators()["G"]
    loop.recipe.attach_stage("gmm", gmm_loop.recipe, {"G": gmm})
    before_gmm = [p.clone() for p in gmm.parameters()]
    result = loop.run()
    before, after = result.val_before, result.val_after
    assert after["val/l1"] < before["val/l1"] and after["val/ssim"] > before["val/ssim"], (before, after)
    assert after["val/aux_pixel_accuracy"] > before["val/aux_pixel_accuracy"], (before, after)
    assert all(torch.equal(a, b) for a, b in zip(before_gmm, gmm.parameters()))  # consumed frozen
    assert loop.recipe.teacher_forcing() is None and loop.recipe.tries_on


def test_plain_cpvton_has_no_head_and_options_are_checked(viton_shards):
    from orchestrator.recipes import build_recipe_from_config
    from orchestrator.registry.stages import pin_consumed_stages

    plain = build_recipe_from_config(_config(viton_shards, "cpvton_aux.gmm", 1, "model.aux=false"))
    assert plain.build_networks()["G"].aux_decoder is None
    with pytest.raises(ValueError, match=r"model.aux_class_weights: 20: 2.0 must be a class index in \[0, 19\]"):
        build_recipe_from_config(_config(viton_shards, "cpvton_aux.gmm", 1, "model.aux_class_weights={20: 2.0}"))
    with pytest.raises(ValueError, match=r"in \[0, 6\] of aux_classes=grouped7 \(0 background, 1 hair, 2 face"):
        build_recipe_from_config(_config(viton_shards, "cpvton_aux.gmm", 1, "model.aux_classes=grouped7",
                                         "model.aux_class_weights={7: 2.0}"))
    with pytest.raises(ValueError, match="model.aux_skin_weight: expected a number > 0, got 0"):
        build_recipe_from_config(_config(viton_shards, "cpvton_aux.tom", 1, "model.aux_skin_weight=0"))
    with pytest.raises(ValueError, match="must be divisible by 64"):
        build_recipe_from_config(_config(viton_shards, "cpvton_aux.tom", 1, "data.image_size=64x48"))
    tom = _config(viton_shards, "cpvton_aux.tom", 1)
    with pytest.raises(ConfigError, match="model.gmm: not set; TOM renders on the warps of a registered"):
        pin_consumed_stages(tom, build_recipe_from_config(tom))


def test_summary_shows_the_papers_parameter_counts(capsys):
    from orchestrator.cli import main

    assert main(["models", "summary", "cpvton_aux.gmm"]) == 0
    out = capsys.readouterr().out  # 19,057,650 GMM + 2,752,628 head
    assert "21,810,278 parameters" in out and "(auxiliary head 2,752,628)" in out
    assert main(["models", "summary", "cpvton_aux.gmm", "model.aux=false"]) == 0
    assert "19,057,650 parameters" in capsys.readouterr().out
    assert main(["models", "summary", "cpvton_aux.tom", "model.aux=false"]) == 0
    assert "21,349,252 parameters  in=25  out=[1, 4, 256, 192]" in capsys.readouterr().out
    assert main(["models", "summary", "cpvton_aux.tom"]) == 0
    out = capsys.readouterr().out
    assert "31,548,248 parameters" in out and "(auxiliary head 10,198,996)" in out


def test_auxiliary_classes_and_their_weights_are_options_and_move_the_loss(viton_shards):
    from orchestrator.recipes import build_recipe_from_config

    lip = build_recipe_from_config(_config(viton_shards, "cpvton_aux.gmm", 1))
    assert lip.class_weights.tolist() == [3.0] + [1.0] * 12 + [3.0] * 5 + [1.0] * 2  # background, face, arms, legs
    grouped = build_recipe_from_config(_config(viton_shards, "cpvton_aux.tom", 1, "model.aux_classes=grouped7"))
    assert grouped.build_networks()["G"](torch.zeros(1, 25, 64, 64))[1].shape == (1, 7, 64, 64)
    parse = torch.tensor([[0, 2, 13, 5, 10, 12, 3, 14, 18]])  # background hair face upper jumpsuit skirt glove arm shoe
    assert grouped.aux_target(parse).tolist() == [[0, 1, 2, 3, 3, 4, 5, 5, 6]]
    assert grouped.class_weights.tolist() == [3.0, 1.0, 3.0, 1.0, 1.0, 3.0, 3.0]

    # Background right, arms wrong: weighting skin up raises the loss, weighting background up lowers it.
    parse = torch.tensor([[[0, 0, 14, 15]]])
    logits = torch.zeros(1, 20, 1, 4)
    logits[0, 0] = 4.0  # every pixel predicted background
    def aux_ce(*overrides: str) -> float:
        recipe = build_recipe_from_config(_config(viton_shards, "cpvton_aux.gmm", 1, *overrides))
        return float(recipe.aux_terms(logits, {"parse": parse})["aux_ce"])
    assert aux_ce("model.aux_skin_weight=5") > aux_ce() > aux_ce("model.aux_background_weight=5")
    assert aux_ce("model.aux_class_weights.14=5") > aux_ce()  # one class, as a dotted override


def test_the_sweep_space_example_is_valid_for_both_stages(monkeypatch):
    from orchestrator.config import override_config
    from orchestrator.recipes import build_recipe_from_config
    from tune.space import SearchSpace

    monkeypatch.setenv("VTON_BUCKET", "my-bucket")
    configs = Path(__file__).resolve().parents[1] / "configs" / "cpvton_aux"
    space = SearchSpace.from_file(configs / "sweeps" / "aux_weights.yaml")
    assert set(space.params) == {"loss.weights.aux_ce", "model.aux_background_weight", "model.aux_skin_weight"}
    for stage in ("gmm", "tom"):
        cfg = load_config(configs / f"{stage}.yaml", [])
        space.validate(cfg)  # every probe builds the recipe
        trial = build_recipe_from_config(override_config(cfg, space.overrides(
            {"loss.weights.aux_ce": 0.5, "model.aux_background_weight": 1.5, "model.aux_skin_weight": 4.5})))
        assert trial.loss_weights["aux_ce"] == 0.5
        assert trial.class_weights[0] == 1.5 and trial.class_weights[14] == 4.5 and trial.class_weights[5] == 1.0


def test_the_shipped_configs_form_a_pipeline_gmm_then_tom(monkeypatch):
    from orchestrator.jobs.pipeline import load_stages

    monkeypatch.setenv("VTON_BUCKET", "my-bucket")
    stages = load_stages(Path(__file__).resolve().parents[1] / "configs" / "cpvton_aux")
    assert [(s.name, s.cfg.model.recipe, s.consumes) for s in stages] == [
        ("gmm", "cpvton_aux.gmm", {}), ("tom", "cpvton_aux.tom", {"gmm": "cpvton_aux.gmm"})]
    assert stages[1].needs() == {"model.gmm": "cpvton_aux.gmm"}


# ------------------------------------------------------------------- through the stack and Ray Train


@pytest.fixture(scope="module")
def viton_s3(stack, viton_shards) -> str:
    return shard_to_s3(viton_shards / "data", "viton", stack.bucket, "cpvton")


@pytest.mark.slow
def test_pipeline_trains_the_gmm_as_a_ray_job_then_tom_on_the_version_it_registered(viton_s3, tmp_path):
    """TOM trains in this process on the GMM version the Ray job registered (tests/plugins/stack.py)."""
    import shutil
    import uuid

    from mlflow import MlflowClient
    from mlflow.models import get_model_info

    stages = tmp_path / "cpvton_aux"
    stages.mkdir()
    for stage in ("gmm", "tom"):
        shutil.copy(Path(__file__).resolve().parents[1] / "configs" / "cpvton_aux" / f"{stage}.yaml", stages)
    tag = uuid.uuid4().hex[:6]
    overrides = [
        f"data.manifest={viton_s3}/train/manifest.json", f"data.val_manifest={viton_s3}/test/manifest.json",
        SIZE, "data.batch_size=2", "precision.mode=bf16", "train.grad_accum=2", "model.ngf=8", "train.lr.G=1e-3",
        "train.schedule.G=constant", "train.eval_batches=2", "train.sample_every=0", "checkpoint.storage_path=s3://vton/checkpoints",
        "tracking.experiment=vton-tests", "ray.num_workers=1", "ray.use_gpu=false", "gmm:train.steps=16",
        "gmm:train.eval_every=16", "gmm:checkpoint.every_n_steps=16", "tom:train.steps=2", "tom:train.eval_every=2",
        "tom:checkpoint.every_n_steps=2", "tom:loss.weights.vgg=0",
        *(f"{s}:{k}" for s in ("gmm", "tom") for k in (f"name=cp-{s}-{tag}", f"tracking.model_name=vton-test-cp-{s}-{tag}")),
    ]
    results, _, said = pipeline_with_one_ray_job(stages, overrides, ray_stage="gmm")
    gmm_uri = f"models:/vton-test-cp-gmm-{tag}/1"
    assert [r.stage for r in results] == ["gmm", "tom"] and f"==> tom: model.gmm = {gmm_uri}" in said
    tom_info = get_model_info(f"models:/vton-test-cp-tom-{tag}/1")
    assert tom_info.metadata["vton_config"]["model"]["gmm"] == gmm_uri  # TOM names the GMM it rendered on
    history = MlflowClient().get_metric_history(get_model_info(gmm_uri).run_id, "val/l1")
    assert [m.step for m in history] == [0, 16] and history[1].value < history[0].value  # held-out warp L1 falls
    accuracy = MlflowClient().get_metric_history(get_model_info(gmm_uri).run_id, "val/aux_pixel_accuracy")
    assert accuracy[-1].value > accuracy[0].value  # the auxiliary head learns too (bf16, accumulation 2)


def test_import_cp_vton_registers_tom_on_the_imported_gmm_it_tries_on_and_evaluates(stack, viton_shards,
                                                                                     metric_torch_home, tmp_path, capsys):
    import json
    import uuid

    from mlflow.models import get_model_info

    from orchestrator.cli import main
    from vton_models.families.cpvton_aux.networks import official_tom_keys
    from vton_models.families.cpvton_aux.recipes import CPVTONGMMRecipe, CPVTONTOMRecipe
    from vton_models.recipe import RecipeContext

    context = RecipeContext(image_size=(64, 64), model={"ngf": 8, "aux": False})
    torch.manual_seed(0)
    gmm_state = CPVTONGMMRecipe(context).build_networks()["G"].state_dict()  # CP-VTON's names at this size
    ours_to_official = {v: k for k, v in official_tom_keys().items()}
    tom_state = {ours_to_official[k]: v for k, v in CPVTONTOMRecipe(context).build_networks()["G"].state_dict().items()}
    torch.save(gmm_state, tmp_path / "gmm_final.pth")
    torch.save(tom_state, tmp_path / "tom_final.pth")
    prefix = f"vton-test-cpvton-{uuid.uuid4().hex[:6]}"
    code = main(["import", "cp-vton", "--gmm", str(tmp_path / "gmm_final.pth"), "--tom", str(tmp_path / "tom_final.pth"),
                 "--register", "--name-prefix", prefix, "--set", "data.image_size=64x64", "--set", "model.ngf=8"])
    assert code == 0, capsys.readouterr().err
    tom_config = get_model_info(f"models:/{prefix}-tom@champion").metadata["vton_config"]
    assert tom_config["model"]["gmm"] == f"models:/{prefix}-gmm/1" and tom_config["model"]["align_corners"] is True

    test_dir = viton_shards / "data" / "test"
    cloths = sorted((test_dir / "cloth").iterdir())[:2]
    for i, cloth in enumerate(cloths):
        assert main(["tryon", "--model", f"models:/{prefix}-tom@champion", "--person", str(test_dir),
                     "--cloth", str(cloth), "--out", str(tmp_path / f"o{i}")]) == 0, capsys.readouterr().err
    person = sorted((tmp_path / "o0").glob("*.png"))[0].name
    import cv2

    assert not (cv2.imread(str(tmp_path / "o0" / person)) == cv2.imread(str(tmp_path / "o1" / person))).all()

    # The paper's metrics on paired test data, through the pinned protocol (TOM warps with the GMM it names).
    code = main(["eval", "--model", f"models:/{prefix}-tom@champion", "--data",
                 f"file://{viton_shards}/shards/test/manifest.json", "--workers", "1", "--fid-dims", "64",
                 "--out", str(tmp_path / "eval.json")])
    printed = capsys.readouterr()
    assert code == 0, printed.err
    result = json.loads((tmp_path / "eval.json").read_text())
    metrics = result["metrics"]
    assert result["pairs"] == "paired" and metrics["images"] == len(list((test_dir / "image").iterdir()))
    for key in ("fid", "ssim", "ms_ssim", "psnr"):
        assert metrics[key] == metrics[key] and f"  {key} " in printed.out, key  # present, not NaN, shown
    assert 0 < metrics["ssim"] < 1 and metrics["psnr"] > 0 and metrics["fid"] > 0
