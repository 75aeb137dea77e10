"""`vton eval` and `vton tryon` end to end against the local stack (S3 server + MLflow).

Nothing is trained: a tiny untrained unet_sa generator is registered through the same tracking
code path as training (``MlflowTracker.log_generator``), then evaluated on synthetic shards.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest


REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def setup(stack, metric_torch_home, tmp_path_factory):
    """Synthetic test split on S3 (2 shards) + a registered untrained generator."""
    import vton_models  # noqa: F401
    from orchestrator.config import load_config
    from orchestrator.recipes import build_recipe_from_config
    from orchestrator.registry.tracking import MlflowTracker
    from shards.synthetic import synthesize
    from shards.writer import build_shards

    root = tmp_path_factory.mktemp("eval")
    synthesize(root / "data", n=8, size=(64, 48), seed=11)
    prefix = f"s3://{stack.bucket}/tests/eval-{uuid.uuid4().hex[:8]}"
    manifest = build_shards("viton_hd", root / "data", "test", f"{prefix}/test", shard_size_bytes="1KB", workers=1)
    name = f"vton-test-eval-{uuid.uuid4().hex[:6]}"
    cfg = load_config(REPO / "configs" / "unet_sa" / "demo.yaml",
                      ["model.ngf=8", "model.ndf=8", "tracking.experiment=vton-tests", f"tracking.model_name={name}",
                       "tracking.system_metrics=false", f"name={name}"])
    generator = build_recipe_from_config(cfg).build_networks()["G"]
    tracker = MlflowTracker(cfg, None)
    version = tracker.log_generator(generator, cfg, {"run_name": name})
    tracker.close()
    return {"root": root, "manifest": manifest.build_stats.manifest_url, "shards": len(manifest.shards),
            "name": name, "version": version}


def test_vton_eval_on_ray_writes_json_and_links_the_mlflow_run(setup, tmp_path, capsys):
    from mlflow import MlflowClient

    from orchestrator.cli import main

    assert setup["shards"] >= 2
    out = tmp_path / "results.json"
    code = main(["eval", "--model", f"models:/{setup['name']}/{setup['version']}", "--data", setup["manifest"],
                 "--workers", "2", "--out", str(out), "--fid-dims", "64"])
    assert code == 0, capsys.readouterr().err
    printed = capsys.readouterr().out
    result = json.loads(out.read_text())
    metrics = result["metrics"]
    test_persons = len(list((setup["root"] / "data" / "test" / "image").iterdir()))
    assert metrics["images"] == test_persons and result["workers"] == 2
    import ray
    assert not ray.is_initialized()  # its private cluster is gone: a second one confuses auto-detection
    for key in ("ssim", "mask_ssim", "ms_ssim", "psnr", "l1", "lpips", "fid", "kid", "is", "mask_is"):
        assert key in metrics and metrics[key] == metrics[key], key  # present and not NaN
        assert key in printed
    assert 0 < metrics["l1"] < 1 and metrics["fid"] > 0
    client = MlflowClient()
    run = client.get_run(result["mlflow_run_id"])
    assert run.data.tags["vton.model_name"] == setup["name"]
    assert run.data.tags["vton.model_version"] == setup["version"]
    assert run.data.metrics["paired/ssim"] == pytest.approx(metrics["ssim"])
    mv = client.get_model_version(setup["name"], setup["version"])
    assert mv.tags["vton.eval.paired.run_id"] == result["mlflow_run_id"]


def test_vton_eval_reports_a_bad_model_uri(setup, capsys):
    from orchestrator.cli import main

    code = main(["eval", "--model", f"models:/{setup['name']}/999", "--data", setup["manifest"], "--no-mlflow"])
    assert code == 2 and "not found in the MLflow registry" in capsys.readouterr().err


def test_every_mlflow_model_uri_form_names_the_registered_version(setup, capsys):
    """`runs:/<id>/<path>` and MLflow 3's `models:/m-<id>` failed ("not enough values to unpack"), and a
    bare registered name was refused; each now resolves to the version it is, a bare name to its
    latest version (said on stderr)."""
    from mlflow import MlflowClient
    from mlflow.models import get_model_info

    from orchestrator.cli import main
    from orchestrator.registry.models import ModelError, resolve_version

    name, version = setup["name"], setup["version"]
    model_id = get_model_info(f"models:/{name}/{version}").model_id
    assert model_id and model_id.startswith("m-")
    logged = MlflowClient().get_logged_model(model_id)
    forms = [f"models:/{model_id}", f"runs:/{logged.source_run_id}/{logged.name}", name, f"models:/{name}"]
    for form in forms:
        assert resolve_version(form) == (name, version), form
    assert f"model {name}: its latest version, {version}" in capsys.readouterr().err
    with pytest.raises(ModelError, match="no registered model of that name"):
        resolve_version(f"{name}-nope")
    code = main(["eval", "--model", name, "--data", setup["manifest"], "--no-mlflow", "--fid-dims", "64"])
    assert code == 0, capsys.readouterr().err


def test_vton_tryon_writes_images_and_a_sheet(setup, tmp_path, capsys):
    import cv2

    from orchestrator.cli import main

    test_dir = setup["root"] / "data" / "test"
    cloth = sorted((test_dir / "cloth").iterdir())[0]
    model = f"models:/{setup['name']}/{setup['version']}"
    code = main(["tryon", "--model", model, "--person", str(test_dir), "--cloth", str(cloth), "--out", str(tmp_path / "o")])
    assert code == 0, capsys.readouterr().err
    persons = sorted(p.stem for p in (test_dir / "image").iterdir())
    assert sorted(p.stem for p in (tmp_path / "o").glob("*.png") if p.stem != "sheet") == persons
    assert cv2.imread(str(tmp_path / "o" / f"{persons[0]}.png")).shape == (64, 48, 3)
    assert cv2.imread(str(tmp_path / "o" / "sheet.png")).shape == (64 * len(persons), 48 * 3, 3)
    # The demo config's generator sees the garment (model.garment_input=cloth_and_mask): another cloth, another picture.
    other = sorted((test_dir / "cloth").iterdir())[1]
    assert main(["tryon", "--model", model, "--person", str(test_dir), "--cloth", str(other),
                 "--out", str(tmp_path / "o2")]) == 0, capsys.readouterr().err
    assert not (cv2.imread(str(tmp_path / "o" / f"{persons[0]}.png")) ==
                cv2.imread(str(tmp_path / "o2" / f"{persons[0]}.png"))).all()

    person = sorted((test_dir / "image").iterdir())[0]
    code = main(["tryon", "--model", model, "--person", str(person), "--cloth", str(cloth), "--out", str(tmp_path / "p")])
    err = capsys.readouterr().err
    assert code == 2 and "--pose JSON" in err and "--parse PNG" in err


def test_unpaired_eval_swaps_in_the_other_samples_cloth_and_reports_only_distribution_metrics(setup, capsys, tmp_path):
    import numpy as np

    from orchestrator.cli import main
    from orchestrator.evaluation.evaluate import iter_eval_samples

    paired = dict(iter_eval_samples(setup["manifest"], 0, 1, "paired"))
    unpaired = dict(iter_eval_samples(setup["manifest"], 0, 1, "unpaired"))
    assert paired.keys() == unpaired.keys()
    swapped = 0
    for key, sample in unpaired.items():
        np.testing.assert_array_equal(sample.person, paired[key].person)
        other = next(k for k in paired if np.array_equal(paired[k].cloth, sample.cloth))
        swapped += other != key
    assert swapped == len(unpaired)  # every person wears another sample's cloth

    out = tmp_path / "unpaired.json"
    code = main(["eval", "--model", f"models:/{setup['name']}/{setup['version']}", "--data", setup["manifest"],
                 "--pairs", "unpaired", "--workers", "2", "--no-mlflow", "--fid-dims", "64", "--out", str(out)])
    assert code == 0, capsys.readouterr().err
    metrics = json.loads(out.read_text())["metrics"]
    assert metrics["images"] == len(unpaired)
    assert {"fid", "kid", "is", "mask_is"} <= metrics.keys()
    assert not {"ssim", "l1", "psnr", "lpips", "ms_ssim", "mask_ssim"} & metrics.keys()
    # The garment transfer score, merged over both workers: every person judged or counted as not judged.
    assert metrics["transfer_judged"] + metrics["transfer_unjudged"] == len(unpaired)
    assert metrics["transfer_judged"] == 0 or 0 <= metrics["transfer_score"] <= 1
