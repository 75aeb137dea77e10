"""``train.reuse_fakes`` (pix2pixHD's order): the generator phases run first and the discriminator
phase judges the fakes they generated instead of generating them again.

Per adversarial stage of every family, at recipe level: what the generator phase keeps is exactly
what the discriminator phase would have generated (same D terms) and D's phase then runs no
generator. Through the trainer: one generator forward per micro-batch instead of two, and the first
step's discriminator terms equal the default order's (same weights, same fakes).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import vton_models  # noqa: F401  - first, so torchvision imports on CPU-only torch
from orchestrator.config import load_config
from plugins.data import local_shards
from plugins.weights import torch_home  # noqa: F401

from test_loop import FixedBatches, full_batches, shards, tiny_config  # noqa: F401  - its fixtures too

_ALIAS = ("model.ngf=4", "model.norm_hidden=8", "model.num_upsampling_layers=normal", "model.ndf=8",
          "loss.weights.vgg=0")
_TREE = ("model.ngf=8", "model.ndf=8", "model.n_blocks=1", "loss.weights.feat=0", "loss.weights.style=0")
_SPG = ("model.ngf=8", "model.ndf=8", "model.gmm_ngf=8", "loss.weights.p_perc=0", "loss.weights.t_perc=0",
        "loss.weights.id=0")

#: Every recipe with a discriminator phase -> (shard layout, its overrides at test size).
ADVERSARIAL = {
    "unet_sa": ("viton_hd", ("model.variant=reduced", "model.ngf=8", "model.ndf=8", "loss.weights.vgg=0")),
    "viton_hd.seg": ("viton_hd", ("model.ngf=4", "model.ndf=8", "model.work_size=null")),
    "viton_hd.alias": ("viton_hd", _ALIAS),
    "tree_block.parse": ("mpv", ("model.ngf=8", "model.ndf=8")),
    "tree_block.app": ("mpv", _TREE),
    "tree_block.face": ("mpv", ("model.ngf=8", "model.ndf=8", "model.n_blocks=1", "model.face_size=48",
                                "loss.weights.face_feat=0")),
    "tree_block.joint": ("mpv", _TREE),
    "spg_vton.sem": ("mpv", ("model.ngf=8", "model.ndf=8")),
    "spg_vton.tryon": ("mpv", _SPG),
    "spg_vton.joint": ("mpv", _SPG),
}
#: Widths of the stages attached as frozen (``consumes``), when they are not in ADVERSARIAL.
CONSUMED = {"tree_block.gmm": ("model.ngf=8",)}


@pytest.fixture(scope="module")
def layouts(tmp_path_factory) -> dict[str, tuple[Path, str]]:
    """Synthetic shards of both layouts the adversarial stages read, with their image sizes."""
    viton = local_shards(tmp_path_factory.mktemp("viton"), n=8, size=(64, 48), seed=5)
    mpv = local_shards(tmp_path_factory.mktemp("mpv"), 8, (64, 64), 8, layout="mpv_triplets", synthetic="mpv")
    return {"viton_hd": (viton, "64x48"), "mpv": (mpv, "64x64")}


def _config(root: Path, size: str, recipe: str, overrides: tuple[str, ...]):
    return load_config(None, [
        f"model.recipe={recipe}", f"data.image_size={size}", f"data.manifest=file://{root}/shards/train/manifest.json",
        f"data.val_manifest=file://{root}/shards/test/manifest.json", "data.batch_size=2", "data.loader_workers=0",
        "tracking.enabled=false", "precision.mode=fp32", "train.reuse_fakes=true", *overrides])


def _generator_calls(recipe, nets) -> list[str]:
    """A list that every forward of one of the recipe's generators appends its name to."""
    calls: list[str] = []
    for name in recipe.generator_names():
        nets[name].register_forward_hook(lambda module, args, out, name=name: calls.append(name))
    return calls


@pytest.mark.parametrize("name", sorted(ADVERSARIAL))
def test_the_discriminator_phase_judges_exactly_what_the_generator_phase_kept(layouts, torch_home, name):  # noqa: F811
    from orchestrator.recipes import build_recipe_from_config
    from orchestrator.train.data import make_val_stream

    layout, overrides = ADVERSARIAL[name]
    root, size = layouts[layout]
    recipe = build_recipe_from_config(_config(root, size, name, overrides))
    torch.manual_seed(0)
    for key in recipe.required_stages():  # fresh networks of the stages it reads frozen
        consumed = recipe.consumes[key]
        stage = build_recipe_from_config(_config(root, size, consumed,
                                                 CONSUMED.get(consumed) or ADVERSARIAL[consumed][1]))
        recipe.attach_stage(key, stage, {n: net.eval() for n, net in stage.build_networks().items()})
    nets = {n: net.eval() for n, net in recipe.build_networks().items()}  # eval: a generator forward is repeatable
    recipe.reuse_fakes = True  # what the trainer sets from train.reuse_fakes
    batch = next(iter(make_val_stream(_config(root, size, name, overrides), recipe, 0, 1).iter_from()))
    x = recipe.inputs(batch)
    calls = _generator_calls(recipe, nets)
    recipe.training_seed = 1234
    torch.manual_seed(1)  # the gradient penalties' interpolation draws, the same for both calls
    regenerated = recipe.d_losses(nets, x)  # nothing kept yet: D's phase generates
    assert calls, "the discriminator phase generated nothing"
    recipe.g_losses(nets, x)
    calls.clear()
    torch.manual_seed(1)
    reused = recipe.d_losses(nets, x)
    assert calls == [], f"{name}: the discriminator phase ran {calls} although the generator phase kept its fakes"
    assert set(reused) == set(regenerated)
    for term in regenerated:
        torch.testing.assert_close(reused[term], regenerated[term], rtol=1e-6, atol=1e-7, msg=term)
    recipe.training_seed = 1235  # the next micro-batch never sees this one's fakes
    recipe.g_losses(nets, x)
    recipe.training_seed = 1236
    calls.clear()
    recipe.d_losses(nets, x)
    assert calls, "a kept fake was reused for another micro-batch"
    recipe.training_seed = None


def test_the_trainer_generates_once_per_micro_batch_and_d_sees_the_same_first_step(shards, full_batches):  # noqa: F811
    """unet_sa through GanLoop, 2 micro-batches per step: the default order runs G twice per
    micro-batch (D's phase without a graph, G's with one), reuse_fakes once; step 1's D terms are the
    same (D and G have their initial weights in both orders, G is deterministic at this size)."""
    from orchestrator.train.loop import GanLoop, LoopHooks, WorkerContext

    def first_step(*overrides: str) -> tuple[dict[str, float], int]:
        cfg = tiny_config(shards, "train.steps=1", "train.grad_accum=2", "train.log_every=1", *overrides)
        loop = GanLoop(cfg, WorkerContext(), LoopHooks(train_data=FixedBatches(full_batches, accum=2)))
        calls = _generator_calls(loop.recipe, {"G": loop.strategy.module("G")})
        metrics = loop.run().last_metrics
        return metrics, len(calls)

    default, default_calls = first_step()
    reused, reused_calls = first_step("train.reuse_fakes=true")
    assert (default_calls, reused_calls) == (4, 2)
    for term in ("loss/D/d_real", "loss/D/d_fake"):
        assert reused[term] == pytest.approx(default[term], rel=1e-6), term
    assert set(reused) == set(default)
