"""`vton promote`: the registry promotion gate against the real MLflow server and S3 store.

Two generators are registered once through the training code's own path
(``MlflowTracker.log_generator``): ``bad`` is the untrained network, ``good`` the same network after
a few L1 steps on the training split, so on the held-out split ``good`` has a clearly lower L1.
Each test copies them into a fresh registered model (``mlflow.register_model`` of the source
version: no upload), so tests do not share aliases on the shared server. Every promotion below
runs the real evaluation (``run_eval``) on both sides.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from datetime import datetime
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
GATE = ["--metric", "l1", "--fid-dims", "64"]


def _train_briefly(generator, recipe, manifest: str, cfg, steps: int = 10) -> float:
    """A few L1 steps on one training batch: enough to halve the held-out L1 of an untrained G."""
    import torch

    from orchestrator.evaluation.evaluate import eval_batches

    batch = next(eval_batches(manifest, 0, 1, "paired", tuple(cfg.data.image_size), "unet_sa",
                              {"sigma": cfg.data.pose_sigma}))
    inputs = recipe.inputs(batch)
    optimiser = torch.optim.Adam(generator.parameters(), lr=3e-3)
    generator.train()
    for _ in range(steps):
        loss = (generator(inputs["g_input"]) - inputs["person"]).abs().mean()
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    return float(loss.detach())


@pytest.fixture(scope="module")
def setup(stack, metric_torch_home, tmp_path_factory):
    """Held-out split on S3, train split on disk, a source model with v1 = bad and v2 = good."""
    import torch

    import vton_models  # noqa: F401
    from orchestrator.config import load_config
    from orchestrator.recipes import build_recipe_from_config
    from orchestrator.registry.tracking import MlflowTracker
    from shards.synthetic import synthesize
    from shards.writer import build_shards

    root = tmp_path_factory.mktemp("promote")
    synthesize(root / "data", n=12, size=(64, 48), seed=7)
    test = build_shards("viton_hd", root / "data", "test", f"s3://{stack.bucket}/tests/promote-{uuid.uuid4().hex[:8]}",
                        workers=1)
    train = build_shards("viton_hd", root / "data", "train", f"file://{root}/train", workers=1)
    src = f"vton-test-promote-src-{uuid.uuid4().hex[:6]}"
    cfg = load_config(REPO / "configs" / "unet_sa" / "demo.yaml",
                      ["model.ngf=8", "model.ndf=8", "tracking.experiment=vton-tests", f"tracking.model_name={src}",
                       "tracking.system_metrics=false", f"name={src}"])
    recipe = build_recipe_from_config(cfg)
    torch.manual_seed(0)
    generator = recipe.build_networks()["G"]
    versions = {}
    tracker = MlflowTracker(cfg, None)
    versions["bad"] = tracker.log_generator(generator, cfg, {})
    _train_briefly(generator, recipe, train.build_stats.manifest_url, cfg)
    versions["good"] = tracker.log_generator(generator, cfg, {})
    tracker.close()
    return {"manifest": test.build_stats.manifest_url, "src": src, "versions": versions}


def _run_concurrently(target, args_list: list[tuple]) -> None:
    """One thread per argument tuple, all started before any is awaited."""
    threads = [threading.Thread(target=target, args=args) for args in args_list]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def new_model(setup, kinds: list[str]) -> str:
    """A fresh registered model whose versions 1..n are copies of the given source versions."""
    import mlflow

    name = f"vton-test-promote-{uuid.uuid4().hex[:8]}"
    for kind in kinds:
        mlflow.register_model(f"models:/{setup['src']}/{setup['versions'][kind]}", name)
    return name


def aliases(name: str) -> dict[str, str]:
    from mlflow import MlflowClient

    return {k: str(v) for k, v in MlflowClient().get_registered_model(name).aliases.items()}


def promote_json(capsys, name: str, *args: str) -> dict:
    from orchestrator.cli import main

    capsys.readouterr()
    code = main(["promote", name, *args, "--json"])
    out, err = capsys.readouterr()
    result = json.loads(out)  # stdout is the JSON alone; MLflow's run links go to stderr
    assert code == (3 if result["decision"] == "rejected" else 0), err  # a pipeline branches on the status
    return result


def error_of(capsys, *argv: str) -> str:
    """The error line of a command that must fail with exit status 2: one line, no traceback
    (MLflow's download progress bars may precede it on stderr)."""
    from orchestrator.cli import main

    capsys.readouterr()
    code = main(list(argv))
    err = capsys.readouterr().err
    assert code == 2, err
    lines = [line for line in err.splitlines() if line.strip() and "Downloading artifacts" not in line]
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err, err
    return lines[0]


# -------------------------------------------------------------------------------- the gate


def test_gate_promotes_better_keeps_worse_and_equal_out_and_rolls_back(setup, capsys, tmp_path, monkeypatch):
    from mlflow import MlflowClient

    from orchestrator.cli import main
    from orchestrator.train.data import manifest_sha256
    from orchestrator.registry.promotion import SWEEP_BEST_MODEL_TAG, SWEEP_BEST_VERSION_TAG

    client = MlflowClient()
    name = new_model(setup, ["bad", "good", "good"])  # v3 has v2's exact weights
    data = ["--data", setup["manifest"], *GATE]

    # First model: an absolute threshold it fails keeps it out, without one it goes in. Judged on L1,
    # the gate needs no pretrained network: an empty TORCH_HOME is enough.
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "no-weights"))
    out = promote_json(capsys, name, "--candidate", "1", *data, "--threshold", "0.001")
    assert out["decision"] == "rejected" and "threshold" in out["reason"] and aliases(name) == {}
    assert "no @previous" in error_of(capsys, "promote", name, "--rollback")
    out = promote_json(capsys, name, "--candidate", "1", *data)
    assert out["decision"] == "promoted" and "no --threshold set" in out["reason"]
    assert aliases(name) == {"champion": "1"}
    bad_l1 = out["plan"]["candidate"]["value"]
    assert set(out["plan"]["candidate"]["metrics"]) == {"images", "ssim", "mask_ssim", "ms_ssim", "psnr", "l1",
                                                        "psnr_capped_images", "ms_ssim_scales"}
    assert out["plan"]["protocol"]["skipped"] == ["FID, KID, IS, mask-IS (Inception)", "LPIPS (AlexNet)"]
    monkeypatch.undo()

    # Better, named by a sweep's parent run (the contract tune/ writes): moves @champion, keeps @previous.
    run = client.create_run(client.get_experiment_by_name("vton-tests").experiment_id,
                            tags={SWEEP_BEST_VERSION_TAG: "2", SWEEP_BEST_MODEL_TAG: name})
    out = promote_json(capsys, name, "--from-sweep", run.info.run_id, *data, "--min-delta", "0.01")
    assert out["decision"] == "promoted", out["reason"]
    assert out["plan"]["champion"]["value"] == pytest.approx(bad_l1)
    assert out["plan"]["candidate"]["value"] < bad_l1 - 0.01
    assert aliases(name) == {"champion": "2", "previous": "1"}
    tags = client.get_model_version(name, "2").tags
    assert tags["vton.promotion.decision"] == "promoted" and tags["vton.promotion.metric"] == "l1"
    assert tags["vton.promotion.mode"] == "min" and tags["vton.promotion.min_delta"] == "0.01"
    assert tags["vton.promotion.champion_version"] == "1"
    assert float(tags["vton.promotion.champion_value"]) == pytest.approx(bad_l1, rel=1e-5)
    assert float(tags["vton.promotion.candidate_value"]) < float(tags["vton.promotion.champion_value"])
    assert tags["vton.promotion.manifest_sha256"] == manifest_sha256(setup["manifest"])
    assert json.loads(tags["vton.promotion.protocol"])["resolution_hw"] == [64, 48]
    assert tags["vton.promotion.by"] and datetime.fromisoformat(tags["vton.promotion.at"]).tzinfo is not None
    for run_id in (tags["vton.promotion.candidate_eval_run"], tags["vton.promotion.champion_eval_run"]):
        assert client.get_run(run_id).data.metrics["paired/l1"] > 0

    # Equal (same weights as the champion) does not win, not even with min-delta 0.
    out = promote_json(capsys, name, "--candidate", "3", *data)
    assert out["decision"] == "rejected" and "equal" in out["reason"]
    assert out["plan"]["candidate"]["value"] == out["plan"]["champion"]["value"]
    assert client.get_model_version(name, "3").tags["vton.promotion.decision"] == "rejected"

    # Worse does not win; the table names both values and the decision.
    capsys.readouterr()
    assert main(["promote", name, "--candidate", "1", *data]) == 3  # rejected
    table = capsys.readouterr().out
    assert "REJECTED" in table and "worse by" in table and "l1" in table and "<- gate" in table
    assert aliases(name) == {"champion": "2", "previous": "1"}
    assert client.get_model_version(name, "1").tags["vton.promotion.champion_version"] == "2"

    # Rollback swaps, so a second rollback undoes the first.
    out = promote_json(capsys, name, "--rollback")
    assert out["decision"] == "rolled_back" and aliases(name) == {"champion": "1", "previous": "2"}
    assert client.get_model_version(name, "2").tags["vton.promotion.rolled_back_to"] == "1"
    promote_json(capsys, name, "--rollback")
    assert aliases(name) == {"champion": "2", "previous": "1"}


def test_gate_refuses_a_candidate_trained_on_too_many_bad_samples(setup, capsys):
    """The trainer tags each version with the fraction of bad samples it skipped; a better model
    trained on 12% bad data is rejected under the default 5%, and promoted when the user allows 20%."""
    from mlflow import MlflowClient

    name = new_model(setup, ["bad", "good"])
    data = ["--data", setup["manifest"], *GATE]
    assert promote_json(capsys, name, "--candidate", "1", *data)["decision"] == "promoted"  # untagged: not judged
    MlflowClient().set_model_version_tag(name, "2", "bad_sample_fraction", "0.12")
    out = promote_json(capsys, name, "--candidate", "2", *data)
    assert out["decision"] == "rejected" and out["reason"] == (
        "trained on 12.00% bad samples (tag bad_sample_fraction), more than --max-bad-fraction 5.00%")
    assert aliases(name) == {"champion": "1"}
    out = promote_json(capsys, name, "--candidate", "2", *data, "--max-bad-fraction", "0.2")
    assert out["decision"] == "promoted" and aliases(name) == {"champion": "2", "previous": "1"}


# --------------------------------------------------------------------------- concurrency


def test_two_concurrent_promotions_of_better_candidates_have_one_winner(setup):
    from mlflow import MlflowClient

    from orchestrator.registry import promotion as registry

    client = MlflowClient()
    name = new_model(setup, ["bad", "good", "good"])
    client.set_registered_model_alias(name, "champion", "1")
    gate = registry.make_gate("l1", None, 0.0, None, "paired")

    plans: dict[str, registry.PromotionPlan | BaseException] = {}

    def plan(version: str) -> None:
        try:
            plans[version] = registry.evaluate(name, version, setup["manifest"], gate, fid_dims=64)
        except BaseException as exc:  # noqa: BLE001 - reported below with its traceback
            plans[version] = exc

    _run_concurrently(plan, [("2",), ("3",)])
    for version, outcome in plans.items():
        if isinstance(outcome, BaseException):
            raise AssertionError(f"evaluating version {version} failed") from outcome
    assert [plans[v].decision for v in ("2", "3")] == ["promoted", "promoted"]  # both beat the same champion

    barrier, outcomes = threading.Barrier(2), {}

    def commit(version: str) -> None:
        barrier.wait()
        try:
            outcomes[version] = registry.commit(plans[version])
        except registry.PromotionConflict as exc:
            outcomes[version] = exc

    _run_concurrently(commit, [("2",), ("3",)])
    winners = [v for v, o in outcomes.items() if isinstance(o, registry.PromotionResult)]
    losers = [v for v, o in outcomes.items() if isinstance(o, registry.PromotionConflict)]
    assert len(winners) == 1 and len(losers) == 1, outcomes
    assert aliases(name) == {"champion": winners[0], "previous": "1"}
    assert "vton.promotion.decision" not in client.get_model_version(name, losers[0]).tags
    assert client.get_registered_model(name).tags["vton.champion_epoch"] == "1"
    # The loser's plan stays stale: committing it later is refused too, and no claim is left behind.
    with pytest.raises(registry.PromotionConflict, match="changed"):
        registry.commit(plans[losers[0]])
    assert aliases(name) == {"champion": winners[0], "previous": "1"}
    left = client.search_registered_models(filter_string=f"name LIKE '{name}.promotion-claim.%'")
    assert [m.name for m in left] == []


def test_the_claim_admits_one_writer_and_expires(stack):
    from mlflow import MlflowClient

    from orchestrator.registry.claim import ClaimConflict, acquire, retire_claims

    client = MlflowClient()
    name = f"vton-test-claim-{uuid.uuid4().hex[:8]}"
    client.create_registered_model(name)
    barrier, got = threading.Barrier(6), []

    def race() -> None:
        barrier.wait()
        try:
            got.append(acquire(client, name, 0))
        except ClaimConflict as exc:
            got.append(exc)

    _run_concurrently(race, [()] * 6)
    held = [g for g in got if not isinstance(g, ClaimConflict)]
    assert len(held) == 1 and len(got) == 6
    with pytest.raises(ClaimConflict, match="another promotion"):
        acquire(client, name, 0)
    held[0].release()  # gave up without writing: the next writer takes the next attempt at once
    short = acquire(client, name, 0, ttl_s=1.0)
    assert short.name.endswith(".e0.a1")
    with pytest.raises(ClaimConflict):
        acquire(client, name, 0)
    time.sleep(1.2)  # the holder died: its claim expires, and the holder itself may no longer write
    with pytest.raises(ClaimConflict, match="expired"):
        short.assert_live()
    assert acquire(client, name, 0).name.endswith(".e0.a2")
    assert retire_claims(client, name, below_epoch=1) == 3
    assert client.search_registered_models(filter_string=f"name LIKE '{name}.promotion-claim.%'") == []
    client.delete_registered_model(name)


# -------------------------------------------------------------------------------- errors


def test_promote_errors_name_the_problem_in_one_line(setup, capsys):
    from mlflow import MlflowClient

    from orchestrator.registry.promotion import METRIC_MODES, SWEEP_BEST_VERSION_TAG

    client = MlflowClient()
    name = new_model(setup, ["good"])
    data = ["--data", setup["manifest"], "--fid-dims", "64"]

    err = error_of(capsys, "promote", name, "--candidate", "1", *data, "--metric", "fidd")
    assert "--metric 'fidd'" in err and all(m in err for m in METRIC_MODES)
    assert "not found" in error_of(capsys, "promote", f"{name}-missing", "--candidate", "1", *data, "--metric", "l1")
    assert "version '9'" in error_of(capsys, "promote", name, "--candidate", "9", *data, "--metric", "l1")
    for sources in ([], ["--candidate", "1", "--from-sweep", "abc"], ["--candidate", "1", "--rollback"]):
        assert "exactly one of" in error_of(capsys, "promote", name, *sources, *data)
    assert "--mode min for ssim" in error_of(capsys, "promote", name, "--candidate", "1", *data, "--metric", "ssim",
                                             "--mode", "min")
    run = client.create_run(client.get_experiment_by_name("vton-tests").experiment_id)
    assert SWEEP_BEST_VERSION_TAG in error_of(capsys, "promote", name, "--from-sweep", run.info.run_id, *data)

    # A champion whose artifacts are gone cannot be evaluated: refused before the candidate is run.
    run_id = client.get_model_version(name, "1").run_id
    broken = client.create_model_version(name, source=f"{client.get_run(run_id).info.artifact_uri}/no-such-model",
                                         run_id=run_id)
    client.set_registered_model_alias(name, "champion", broken.version)
    err = error_of(capsys, "promote", name, "--candidate", "1", *data, "--metric", "l1")
    assert f"@champion (version {broken.version})" in err and "cannot be evaluated" in err
    assert "vton.promotion.decision" not in client.get_model_version(name, "1").tags
    assert aliases(name) == {"champion": broken.version}



def test_concurrent_writers_of_one_version_tag_do_not_fail(stack):
    """Two evaluations of one @champion write the same tags at once; MLflow's SQL store can then
    raise a UNIQUE-constraint error for the slower writer (seen in CI). The last writer wins instead."""
    from mlflow import MlflowClient

    from orchestrator.evaluation.evaluate import _set_version_tag

    client = MlflowClient(stack.mlflow_uri)
    name = f"vton-test-tag-race-{uuid.uuid4().hex[:6]}"
    client.create_registered_model(name)
    version = client.create_model_version(name, source=f"s3://{stack.bucket}/tests/{name}/model").version
    errors: list[BaseException] = []

    def write(key: str, value: str) -> None:
        try:
            _set_version_tag(client, name, version, key, value)
        except BaseException as exc:  # noqa: BLE001 - collected and reported below
            errors.append(exc)

    for round_ in range(10):
        threads = [threading.Thread(target=write, args=(f"k{round_}", str(i))) for i in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert not errors, errors[:2]
    tags = client.get_model_version(name, version).tags
    assert all(tags[f"k{r}"] in {str(i) for i in range(6)} for r in range(10))
    client.delete_registered_model(name)
