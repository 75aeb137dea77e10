"""Seed 000 with the garment in G's input (``model.garment_input``, a paper bug fixed as an option),
and the garment transfer score that tells a try-on from a re-rendering of the worn garment."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

import vton_models  # noqa: F401  - first, so torchvision imports on CPU-only torch
from orchestrator.config import ConfigError, load_config
from plugins.data import decoded_samples, local_shards
from shards.collate import collate
from shards.synthetic import synthesize
from vton_models.metrics.transfer import MIN_COLOUR_GAP, TransferScore
from vton_models.recipe import RecipeContext
from vton_models.registry import build_recipe, get_representation

REPO = Path(__file__).resolve().parents[1]
TINY = {"variant": "reduced", "ngf": 8, "ndf": 8}


def _recipe(garment_input: str, size=(64, 48), **options):
    return build_recipe("unet_sa", RecipeContext(image_size=size, model={**TINY, "garment_input": garment_input,
                                                                         **options}))


@pytest.fixture(scope="module")
def samples(tmp_path_factory):
    root = tmp_path_factory.mktemp("garment")
    synthesize(root, n=6, size=(64, 64), seed=3, split_test_fraction=0.0)
    return decoded_samples(root)


def _batch(samples, representation="unet_sa"):
    build = get_representation(representation)
    return collate([build(s) for s in samples], [s.key for s in samples])


# ----------------------------------------------------------------------------- the transfer score


def test_transfer_score_judges_the_garment_region_against_both_garments_by_hand():
    h, w = 4, 4
    parse = torch.zeros(4, h, w, dtype=torch.int64)
    parse[:, 1:3, 1:3] = 5  # upper clothes: 4 pixels
    parse[3] = 0  # no garment region: not judged
    original = torch.zeros(4, 3, h, w)
    original[:, 0] = 1.0  # everyone wears red
    cloth = torch.zeros(4, 3, h, w)
    cloth[:, 2] = 1.0  # the new garment is blue ...
    cloth[2, 0], cloth[2, 2] = 1.0, 0.0  # ... except sample 2's, red like the original: not judged
    cloth_mask = torch.ones(4, 1, h, w)
    fake = torch.zeros(4, 3, h, w)
    fake[0, 2] = 0.8  # bluish: transferred
    fake[1, 0] = 0.8  # reddish: the old garment re-rendered
    ts = TransferScore()
    ts.update(fake, original, parse, cloth, cloth_mask)
    assert ts.compute() == {"transfer_score": 0.5, "transfer_judged": 2.0, "transfer_unjudged": 2.0}
    # Only the region counts: outside it a blue fake changes nothing.
    fake[1, 2, 0, 0] = 1.0
    again = TransferScore()
    again.update(fake, original, parse, cloth, cloth_mask)
    assert again.compute()["transfer_score"] == 0.5
    # States merge (the workers of `vton eval`), and a gap below MIN_COLOUR_GAP is not judged.
    again.merge(ts.state())
    assert again.compute()["transfer_judged"] == 4.0
    close = original.clone()
    close[:, 1] = MIN_COLOUR_GAP / 2
    nothing = TransferScore()
    nothing.update(fake, original, parse, close, cloth_mask)
    assert nothing.compute()["transfer_score"] is None and nothing.unjudged == 4


# ------------------------------------------------------------------------------ G's input variants


def test_none_is_the_papers_41_channels_and_the_same_network_for_a_fixed_seed(samples):
    batch = _batch(samples[:2])
    paper = _recipe("none")
    assert paper.inputs(batch)["g_input"] is batch["inputs"]
    torch.manual_seed(0)
    default = build_recipe("unet_sa", RecipeContext(image_size=(64, 48), model=TINY)).build_networks()["G"]
    torch.manual_seed(0)
    explicit = paper.build_networks()["G"]
    assert all(torch.equal(a, b) for a, b in zip(default.state_dict().values(), explicit.state_dict().values()))


@pytest.mark.parametrize("variant, garment_channels", [("cloth", 3), ("cloth_and_mask", 4)])
def test_garment_aware_input_is_the_person_the_merged_region_and_the_garment(samples, variant, garment_channels):
    batch = _batch(samples[:3])
    x = batch["inputs"]
    g = _recipe(variant).inputs(batch)["g_input"]
    assert g.shape[1] == 21 + 18 + 1 + garment_channels == _recipe(variant).generator_channels
    assert torch.equal(g[:, :21], x[:, :21])  # agnostic RGB + pose, as in the paper
    kept = [label for label in range(20) if label not in (5, 7)]
    assert torch.equal(g[:, 21:39], x[:, [21 + label for label in kept]])
    region = ((batch["parse"] == 5) | (batch["parse"] == 7)).float()
    assert torch.equal(g[:, 39], region)
    assert torch.equal(region, (batch["agnostic"] != batch["person"]).any(1).float())  # what the agnostic grays out
    assert torch.equal(g[:, 40:43], batch["cloth"])
    if variant == "cloth_and_mask":
        assert torch.equal(g[:, 43:44], batch["cloth_mask"])


def test_the_merged_parse_does_not_say_which_garment_was_worn(samples):
    sample = samples[0]
    assert (sample.parse == 5).any()
    as_coat = dataclasses.replace(sample, parse=np.where(sample.parse == 5, 7, sample.parse).astype(np.uint8))
    paper, aware = _recipe("none"), _recipe("cloth_and_mask")
    upper, coat = _batch([sample]), _batch([as_coat])
    assert not torch.equal(paper.inputs(upper)["g_input"], paper.inputs(coat)["g_input"])  # the paper's leaks it
    assert torch.equal(aware.inputs(upper)["g_input"], aware.inputs(coat)["g_input"])


def test_warped_feeds_the_attached_gmms_warp_and_needs_one(samples):
    from orchestrator.registry.stages import pin_consumed_stages

    gmm_recipe = build_recipe("viton_hd.gmm", RecipeContext(image_size=(64, 64), model={"ngf": 8, "work_size": None}))
    gmm = gmm_recipe.build_networks()["G"]
    recipe = _recipe("warped", size=(64, 64))
    assert recipe.representation.name == "unet_sa_with_gmm" and recipe.consumes == {"gmm": "viton_hd.gmm"}
    batch = _batch(samples[:2], "unet_sa_with_gmm")
    with pytest.raises(ValueError, match="garment_input=warped needs model.gmm"):
        recipe.inputs(batch)
    recipe.attach_stage("gmm", gmm_recipe, {"G": gmm})
    g = recipe.inputs(batch)["g_input"]
    gmm_batch = _batch(samples[:2], "viton_hd")
    _, warped, _ = gmm_recipe.warp(gmm, gmm_recipe.inputs(gmm_batch))
    assert g.shape[1] == 43 and torch.equal(g[:, 40:43], warped)
    assert not torch.equal(warped, gmm_batch["cloth"])
    assert not any(p.requires_grad for p in gmm.parameters())  # consumed frozen

    cfg = load_config(None, ["model.recipe=unet_sa", "model.garment_input=warped", "data.image_size=64x64"])
    with pytest.raises(ConfigError, match=r"model.gmm: not set; model.garment_input=warped feeds G the garment "
                                          r"warped by a registered viton_hd.gmm stage"):
        pin_consumed_stages(cfg, _recipe("warped", size=(64, 64)))
    with pytest.raises(ValueError, match="model.gmm: only model.garment_input=warped consumes a GMM stage"):
        _recipe("cloth", gmm="models:/vton-some-gmm@champion")
    with pytest.raises(ValueError, match="model.garment_input: 'shirt' is not one of"):
        _recipe("shirt")


def test_summary_reports_every_variant_with_its_parameter_count(capsys):
    from orchestrator.cli import main
    from test_unet_sa_model import closed_form_generator

    assert main(["models", "summary", "unet_sa", "model.variant=reduced"]) == 0
    out = capsys.readouterr().out
    for variant, channels in (("none", 41), ("cloth", 43), ("cloth_and_mask", 44), ("warped", 43)):
        expected = closed_form_generator(64, 3, 6, cin=channels)
        assert f"garment_input={variant}".ljust(28) + f" G {expected:,d} (in={channels})" in out, out
    assert "garment_input=none           G 37,109,124 (in=41)" in out  # the paper's network, unchanged


# ------------------------------------------------------------------------------------ it transfers


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    return local_shards(tmp_path_factory.mktemp("transfer"), n=96, size=(64, 48), seed=0)  # the demo's set


def _train_and_score(root: Path, variant: str, steps: int) -> tuple[float, float]:
    from orchestrator.evaluation.transfer import unpaired_tryon
    from orchestrator.train.loop import GanLoop, WorkerContext

    cfg = load_config(REPO / "configs" / "unet_sa" / "demo.yaml", [
        f"data.manifest=file://{root}/shards/train/manifest.json",
        f"data.val_manifest=file://{root}/shards/test/manifest.json", "tracking.enabled=false",
        "precision.mode=fp32", f"train.steps={steps}", "data.batch_size=8", "train.grad_accum=1", "ray.num_workers=1",
        "train.sample_every=0", "train.eval_every=0", "train.log_every=50", "model.ndf=8",
        f"model.garment_input={variant}"])
    loop = GanLoop(cfg, WorkerContext())
    before = unpaired_tryon(loop.recipe, loop.generators(), cfg, cfg.data.val_manifest).score
    loop.run()
    after = unpaired_tryon(loop.recipe, loop.generators(), cfg, cfg.data.val_manifest).score
    return before["transfer_score"], after["transfer_score"]


@pytest.mark.slow
def test_the_garment_aware_generator_learns_to_put_the_new_garment_on_and_the_papers_cannot(shards, samples):
    before, aware = _train_and_score(shards, "cloth_and_mask", STEPS)
    print(f"transfer score after {STEPS} steps: cloth_and_mask {before:.2f} -> {aware:.2f}")
    # 0.87 on 23 judged people here (0.70-0.78 after 200 steps); the demo reaches 0.96. The paper's G
    # trained as long scored 0.52: re-rendering the worn garment matches the new one's colour by chance.
    assert aware >= 0.7 and aware >= before + 0.2, (before, aware)
    # ... and why the paper's cannot, whatever it learns: the garment is not in its input, so another
    # garment gives the same picture (a measured 300-step run of it cost as much as the one above).
    paper = _recipe("none")
    generators = {name: net.eval() for name, net in paper.build_networks().items() if name == "G"}
    batch = _batch(samples[:2])
    other = {**batch, "cloth": batch["cloth"].flip(0), "cloth_mask": batch["cloth_mask"].flip(0)}
    assert not torch.equal(other["cloth"], batch["cloth"])
    with torch.no_grad():
        same = [paper.generate(generators, paper.inputs(b)) for b in (batch, other)]
    torch.testing.assert_close(same[0], same[1], rtol=0, atol=0)


STEPS = 300  # three quarters of the demo's steps at half its batch: 75-140 s on 2 cores
