"""Seed 004 (``spg_vton``): each of the paper's three steps learns in-process on synthetic MPV triplets
through the same loop, stream and representation a Ray job uses; the try-on step runs on the frozen G1
trained just before, the joint step starts from both."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import vton_models  # noqa: F401  - first, so torchvision imports on CPU-only torch
from orchestrator.config import load_config
from plugins.data import multipose_tryon, shard_to_s3
from plugins.stack import pipeline_with_one_ray_job
from plugins.weights import torch_home  # noqa: F401

SMALL = ("model.ngf=8", "model.ndf=8")
#: The try-on step at test size; the VGG and face-identity terms are covered by their own test below.
TRYON = (*SMALL, "model.gmm_ngf=8", "loss.weights.p_perc=0", "loss.weights.t_perc=0", "loss.weights.id=0")


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


def test_random_erasing_is_one_rectangle_drawn_only_from_the_micro_batchs_seed():
    from orchestrator.train.loop import micro_batch_seed
    from vton_models.random_erasing import erasing_boxes, random_erase

    seed = micro_batch_seed(7, 120, 1, 241)
    assert seed == micro_batch_seed(7, 120, 1, 241) and seed != micro_batch_seed(7, 120, 0, 241)
    images = torch.rand(64, 3, 32, 24) + 1  # nothing is 0 before erasing
    torch.manual_seed(0)  # the global RNG plays no part
    first = random_erase(images, torch.Generator().manual_seed(seed))
    torch.manual_seed(1)
    assert torch.equal(first, random_erase(images, torch.Generator().manual_seed(seed)))
    erased = (first == 0).all(1)  # (B, H, W); areas in [0.02, 0.33] up to rounding the sides
    fractions = erased.flatten(1).float().mean(1)
    assert ((fractions == 0) | ((fractions >= 0.015) & (fractions <= 0.36))).all() and (fractions > 0).float().mean() > 0.8
    for i, box in enumerate(erasing_boxes(64, (32, 24), torch.Generator().manual_seed(seed))):
        if box is not None:  # exactly the box, nothing else
            top, left, h, w = box
            assert int(erased[i].sum()) == h * w and bool(erased[i, top:top + h, left:left + w].all())


def _batch(cfg, recipe):
    from orchestrator.train.data import make_val_stream

    return next(iter(make_val_stream(cfg, recipe, 0, 1).iter_from()))


def _grad_norms(nets, names) -> dict[str, float]:
    return {n: float(sum(p.grad.norm() ** 2 for p in nets[n].parameters() if p.grad is not None)) ** 0.5 for n in names}


@pytest.fixture(scope="module")
def steps(mpv_shards, torch_home):  # noqa: F811
    """Steps 1 and 2 at test size, freshly initialised, step 2 with step 1 attached (the paper's
    weights: every term on; VGG and SphereFace from random weight files)."""
    from orchestrator.recipes import build_recipe_from_config

    torch.manual_seed(0)
    cfg = {s: _config(mpv_shards, f"spg_vton.{s}", 1, *SMALL, *(("model.gmm_ngf=8",) if s != "sem" else ()))
           for s in ("sem", "tryon")}
    recipes = {s: build_recipe_from_config(c) for s, c in cfg.items()}
    nets = {s: r.build_networks() for s, r in recipes.items()}
    with pytest.raises(ValueError, match="spg_vton.tryon' needs model.sem"):
        recipes["tryon"].inputs({})
    recipes["tryon"].attach_stage("sem", recipes["sem"], nets["sem"])
    return cfg, recipes, nets


def test_the_tryon_steps_terms_reach_the_networks_they_train(steps):
    """Per term, the networks its gradient reaches: the cycle trains the CWM only (G2's mask enters
    GMM1 detached), G3's terms reach G3, GMM1 and G2 (through G3's input); erasing is drawn from the
    micro-batch seed, the same in D's and G's phase, and never outside training."""
    cfg, recipes, all_nets = steps
    recipe, nets = recipes["tryon"], all_nets["tryon"]
    for name in ("D2", "Dg", "Dl"):
        nets[name].requires_grad_(False)
    x = recipe.inputs(_batch(cfg["tryon"], recipe))
    recipe.training_seed = 1234
    y1, y2 = recipe._training_forward(nets, x), recipe._training_forward(nets, x)
    assert torch.equal(y1["tryon"], y2["tryon"])  # the same rectangles on every call of a micro-batch
    recipe.training_seed = None
    assert not torch.equal(recipe._training_forward(nets, x)["tryon"], y1["tryon"])  # no erasing outside training
    recipe.training_seed = 1234
    names = set(recipe.generator_terms(nets, y1, x, x["soft_parse"]))
    assert names == {"p_adv", "p_recon", "p_perc", "cond", "t_recon", "t_perc", "g_adv", "l_adv", "id"}
    reached = {}
    for name in names:  # one graph per term (the crops' roi_align backward cannot be retained)
        for net in nets.values():
            net.zero_grad(set_to_none=True)
        recipe.generator_terms(nets, recipe._training_forward(nets, x), x, x["soft_parse"])[name].backward()
        reached[name] = {n for n, g in _grad_norms(nets, ("G2", "GMM1", "GMM2", "G3")).items() if g > 0}
    for net in nets.values():
        net.zero_grad(set_to_none=True)
        net.requires_grad_(True)
    recipe.training_seed = None
    assert reached["cond"] == {"GMM1", "GMM2"} and reached["p_recon"] == reached["p_perc"] == reached["p_adv"] == {"G2"}
    assert all(reached[t] == {"G2", "GMM1", "G3"} for t in ("t_recon", "t_perc", "g_adv", "l_adv", "id")), reached
    d_terms = recipe.d_losses(nets, x)
    assert set(d_terms) == {f"{d}_{t}" for d in ("d2", "dg", "dl") for t in ("real", "fake", "gp")}


def test_joint_step_starts_from_both_steps_weights_and_trains_every_network(mpv_shards, steps):
    from orchestrator.recipes import build_recipe_from_config

    cfg, recipes, stage_nets = steps
    recipe = build_recipe_from_config(_config(mpv_shards, "spg_vton.joint", 1, *SMALL, "model.gmm_ngf=8"))
    assert recipe.initializes["G1"] == "spg_vton.sem#G" and recipe.initializes["Dl"] == "spg_vton.tryon"
    nets = recipe.build_networks()
    sources = {"G1": ("sem", "G"), "D1": ("sem", "D"), **{n: ("tryon", n) for n in ("G2", "GMM1", "GMM2", "G3", "D2", "Dg", "Dl")}}
    for name, (stage, network) in sources.items():  # what model.init.<network> does from the registry
        nets[name].load_state_dict(stage_nets[stage][network].state_dict())
    batch = _batch(cfg["tryon"], recipes["tryon"])
    for net in [*nets.values(), *stage_nets["tryon"].values(), *stage_nets["sem"].values()]:
        net.eval()
    with torch.no_grad():
        chained = recipes["tryon"].generate(stage_nets["tryon"], recipes["tryon"].inputs(batch))
        joint = recipe.generate(nets, recipe.inputs(batch))
    torch.testing.assert_close(joint, chained, rtol=0, atol=1e-6)  # exactly the registered steps' try-on

    for net in nets.values():
        net.train()
    for name in ("D1", "D2", "Dg", "Dl"):
        nets[name].requires_grad_(False)
    recipe.training_seed = 99
    x = recipe.inputs(batch)
    terms, _ = recipe.g_losses(nets, x)
    assert {"s_focal", "s_recon", "s_adv", "cond", "t_recon", "id"} <= set(terms)
    recipe.weighted_sum(terms).backward()
    norms = _grad_norms(nets, ("G1", "G2", "GMM1", "GMM2", "G3"))
    assert all(v > 0 for v in norms.values()), norms  # the try-on terms reach G1 through its parse
    for name in ("D1", "D2", "Dg", "Dl"):
        nets[name].requires_grad_(True)
    assert set(recipe.d_losses(nets, x)) == {f"{d}_{t}" for d in ("d1", "d2", "dg", "dl") for t in ("real", "fake", "gp")}
    recipe.training_seed = None


def test_summary_shows_the_specs_parameter_counts_and_options_are_checked(mpv_shards, capsys, monkeypatch):
    from orchestrator.cli import main
    from orchestrator.jobs.pipeline import load_stages
    from orchestrator.recipes import build_recipe_from_config

    expected = {"spg_vton.sem": ("23,638,556", "127,810"),
                "spg_vton.tryon": ("23,627,180", "19,034,098", "23,615,660", "119,746", "108,226", "109,954"),
                "spg_vton.joint": ("23,638,556", "23,627,180", "19,034,098", "23,615,660", "127,810", "109,954")}
    for recipe, counts in expected.items():
        assert main(["models", "summary", recipe]) == 0
        out = capsys.readouterr().out
        assert all(f"{c} parameters" in out for c in counts), out

    for recipe, overrides, message in (
            ("sem", ("model.head=soft",), r"model.head: 'soft' is not one of"),
            ("tryon", ("model.face_id=none",), r"model.face_id=none leaves the id term without a face network"),
            ("tryon", ("model.mask_reg_target=zeros",), r"model.mask_reg_target: 'zeros' is not one of"),
            ("tryon", ("model.erase=1",), r"model.erase: expected true or false"),
            ("joint", ("data.image_size=64x40",), r"image_size \(64, 40\) must be divisible by 16")):
        with pytest.raises(ValueError, match=message):
            build_recipe_from_config(_config(mpv_shards, f"spg_vton.{recipe}", 1, *overrides))
    build_recipe_from_config(_config(mpv_shards, "spg_vton.tryon", 1, "model.face_id=none", "loss.weights.id=0"))

    monkeypatch.setenv("VTON_BUCKET", "my-bucket")
    stages = load_stages(Path(__file__).resolve().parents[1] / "configs" / "spg_vton")
    assert [s.name for s in stages] == ["sem", "tryon", "joint"]
    assert stages[1].needs() == {"model.sem": "spg_vton.sem"}
    assert stages[2].needs() == {"model.init.G1": "spg_vton.sem", "model.init.D1": "spg_vton.sem",
                                 **{f"model.init.{n}": "spg_vton.tryon" for n in ("G2", "GMM1", "GMM2", "G3", "D2", "Dg", "Dl")}}


# ------------------------------------------------------------------- through the stack and Ray Train


@pytest.fixture(scope="module")
def mpv_s3(stack, mpv_shards) -> str:
    return shard_to_s3(mpv_shards / "data", "mpv_triplets", stack.bucket, "spg_vton")


@pytest.mark.slow
def test_pipeline_trains_the_three_steps_the_tryon_step_as_a_ray_job_under_deepspeed(mpv_s3, mpv_shards, tmp_path,
                                                                                     metric_torch_home, capsys):
    """``vton pipeline configs/spg_vton/``: G1's pixel accuracy rises; G3's and G2's held-out L1 fall
    in the try-on step, a Ray job under DeepSpeed ZeRO-2 (no gradient penalty there:
    DeepSpeed cannot run its double backward); the joint step from both registered steps (the
    steps other than the try-on one train in this process, tests/plugins/stack.py);
    then the chain a user runs: try-on in another pose with two garments, and the paper's metrics."""
    import json
    import shutil
    import uuid

    import cv2
    from mlflow import MlflowClient
    from mlflow.models import get_model_info

    from orchestrator.cli import main

    stages = tmp_path / "spg_vton"
    shutil.copytree(Path(__file__).resolve().parents[1] / "configs" / "spg_vton", stages)
    tag = uuid.uuid4().hex[:6]
    names = ("sem", "tryon", "joint")
    overrides = [
        f"data.manifest={mpv_s3}/train/manifest.json", f"data.val_manifest={mpv_s3}/test/manifest.json",
        "data.image_size=64x64", "data.batch_size=4", "precision.mode=bf16", "train.lr_g=1e-3", "train.lr_d=1e-3",
        "train.eval_batches=2", "train.sample_every=0", "checkpoint.storage_path=s3://vton/checkpoints",
        "tracking.experiment=vton-tests", "ray.num_workers=1", "ray.use_gpu=false", "model.ngf=8", "model.ndf=8",
        *(f"{s}:model.gmm_ngf=8" for s in ("tryon", "joint")),
        *(f"{s}:loss.weights.{t}=0" for s in ("tryon", "joint") for t in ("p_perc", "t_perc", "id")),
        "tryon:strategy.name=deepspeed", "tryon:strategy.zero_stage=2",
        *(f"tryon:loss.weights.{d}_gp=0" for d in ("d2", "dg", "dl")),
        *(f"{s}:{k}" for s, n in (("sem", 30), ("tryon", 40), ("joint", 20))
          for k in (f"train.steps={n}", f"train.eval_every={n}", f"checkpoint.every_n_steps={n}")),
        # At this scale (64x64, 8 channels, tens of steps) the joint step's adversarial terms trade L1
        # and SSIM for texture; off here, so the test sees the reconstruction terms train all networks.
        *(f"joint:loss.weights.{t}=0" for t in ("s_adv", "p_adv", "g_adv", "l_adv")),
        *(f"{s}:{k}" for s in names for k in (f"name=spg-{s}-{tag}", f"tracking.model_name=vton-test-spg-{s}-{tag}")),
    ]
    _, _, said = pipeline_with_one_ray_job(stages, overrides, ray_stage="tryon")
    out = "\n".join(said)
    uri = {s: f"models:/vton-test-spg-{s}-{tag}/1" for s in names}
    assert f"==> tryon: model.sem = {uri['sem']}" in out
    joint = get_model_info(uri["joint"]).metadata["vton_config"]["model"]
    assert joint["init"] == {"G1": f"{uri['sem']}#G", "D1": f"{uri['sem']}#D",
                             **{n: f"{uri['tryon']}#{n}" for n in ("G2", "GMM1", "GMM2", "G3", "D2", "Dg", "Dl")}}

    def history(stage: str, metric: str) -> list[float]:
        points = MlflowClient().get_metric_history(get_model_info(uri[stage]).run_id, metric)
        return [m.value for m in sorted(points, key=lambda m: m.step)]

    accuracy = history("sem", "val/pixel_accuracy")
    assert accuracy[-1] > accuracy[0] + 0.1, accuracy  # G1 learns the target parse
    def learns(l1: list[float], ssim: list[float]) -> bool:
        """Held-out L1 or SSIM better, the other at most 5% worse: at 64x64 and tens of steps which
        one moves depends on the CPU's kernels and the data order."""
        return (l1[-1] < l1[0] and ssim[-1] > ssim[0] * 0.95) or (ssim[-1] > ssim[0] and l1[-1] < l1[0] * 1.05)

    # The try-on step: G3's held-out L1 falls by a tenth or more and G2's coarse result's falls. Its
    # SSIM is no signal after 40 adversarial steps at 64x64: on this Intel Xeon two runs of the same
    # test gave L1 -22% with SSIM -7%, and a pass (on an AMD EPYC: L1 -25%, SSIM -2.8%).
    l1, ssim, coarse = (history("tryon", f"val/{m}") for m in ("l1", "ssim", "coarse_l1"))
    assert l1[-1] < 0.9 * l1[0] and coarse[-1] < coarse[0], (l1, coarse, ssim)
    # The joint step starts where both steps ended (DeepSpeed's bf16 module vs the exported fp32
    # weights: not bit-equal) and fine-tunes.
    joint_l1, joint_ssim = history("joint", "val/l1"), history("joint", "val/ssim")
    assert joint_l1[0] == pytest.approx(l1[-1], rel=0.02), (l1, joint_l1)
    assert learns(joint_l1, joint_ssim), (joint_l1, joint_ssim)
    tryon_run = MlflowClient().get_run(get_model_info(uri["tryon"]).run_id)
    assert tryon_run.data.params["strategy.name"] == "deepspeed"

    # The whole chain a user runs: the joint model, in another pose, with two garments.
    runs = multipose_tryon(uri["joint"], mpv_shards / "data", tmp_path)
    assert [code for code, _, _ in runs] == [0, 0], runs
    first, second = (cv2.imread(str(picture)) for _, picture, _ in runs)
    assert first.shape == (64, 64, 3) and not (first == second).all()  # another garment, another picture

    # The paper's metrics, paired on the test triplets, masked to its face-and-hair region.
    code = main(["eval", "--model", uri["joint"], "--data", f"{mpv_s3}/test/manifest.json", "--fid-dims", "64",
                 "--is-splits", "10", "--mask", "face_hair", "--no-mlflow", "--out", str(tmp_path / "eval.json")])
    assert code == 0, capsys.readouterr().err
    result = json.loads((tmp_path / "eval.json").read_text())
    for key in ("ssim", "mask_ssim", "fid", "is_split_mean", "mask_is_split_mean"):
        assert result["metrics"][key] == result["metrics"][key], key
    assert "face_hair" in result["protocol"]["mask"]
    # Unpaired: each person with another triplet's garment, no ground truth (the DressCode-style case).
    code = main(["eval", "--model", uri["joint"], "--data", f"{mpv_s3}/test/manifest.json", "--pairs", "unpaired",
                 "--fid-dims", "64", "--no-mlflow", "--out", str(tmp_path / "unpaired.json")])
    assert code == 0, capsys.readouterr().err
    unpaired = json.loads((tmp_path / "unpaired.json").read_text())["metrics"]
    assert "ssim" not in unpaired and unpaired["fid"] == unpaired["fid"] and unpaired["is"] > 0
