"""`vton eval --checkpoint`: a loop checkpoint carries its run config and is evaluated on its own."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from plugins.data import local_shards

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Two in-process training steps with EMA, checkpointing after each one into a local folder."""
    import vton_models  # noqa: F401
    from orchestrator.config import load_config
    from orchestrator.train.loop import GanLoop, WorkerContext

    root = local_shards(tmp_path_factory.mktemp("eval-ckpt"), n=12, size=(64, 48), seed=21)
    cfg = load_config(REPO / "configs" / "unet_sa" / "demo.yaml", [
        f"data.manifest=file://{root}/shards/train/manifest.json", "data.val_manifest=", "data.loader_workers=0",
        "data.batch_size=2", "model.ngf=8", "model.ndf=8", "tracking.enabled=false", "precision.mode=fp32",
        "train.steps=2", "train.grad_accum=1", "train.sample_every=0", "checkpoint.every_n_steps=1",
        "train.ema_decay=0.5", "data.image_size=[64,48]"])
    saved: dict[int, Path] = {}

    def keep(metrics, directory):
        if directory is not None:
            saved[int(metrics["step"])] = Path(shutil.copytree(directory, root / f"checkpoint_step{int(metrics['step'])}"))

    loop = GanLoop(cfg, WorkerContext(report=keep))
    loop.run()
    return {"root": root, "loop": loop, "checkpoint": saved[2]}


def test_the_checkpoint_generator_is_the_exported_one(trained):
    from orchestrator.checkpoints.loading import load_checkpoint_generator

    model = load_checkpoint_generator(f"file://{trained['checkpoint']}")
    ema = trained["loop"].emas["G"].module.state_dict()
    assert model.config.name == trained["loop"].cfg.name and model.name is None
    for key, value in model.generator.state_dict().items():
        assert torch.equal(value, ema[key]), key


def test_vton_eval_checkpoint_prints_and_writes_metrics(trained, metric_torch_home, tmp_path, capsys):
    from orchestrator.cli import main
    from orchestrator.hardware import usable_cpus

    out = tmp_path / "results.json"
    callers = torch.get_num_threads()
    torch.set_num_threads(3)  # a caller's own count, e.g. a driver running the promotion gate
    try:
        code = main(["eval", "--checkpoint", str(trained["checkpoint"]), "--data",
                     f"file://{trained['root']}/shards/test/manifest.json", "--no-mlflow", "--fid-dims", "64",
                     "--threads", "1", "--out", str(out)])
        after = torch.get_num_threads()
    finally:
        torch.set_num_threads(callers)
    assert code == 0, capsys.readouterr().err
    assert after == 3  # the eval's one thread was its own: in-process, it used to stay set for everything after
    result = json.loads(out.read_text())
    test_persons = len(list((trained["root"] / "data" / "test" / "image").iterdir()))
    assert result["metrics"]["images"] == test_persons and 0 < result["metrics"]["l1"] < 1
    assert result["model_uri"] == str(trained["checkpoint"]) and result["threads_per_worker"] == 1
    assert "1 workers x 1 threads" in capsys.readouterr().out

    # By default the one worker has this machine's cores; the numbers are the same up to rounding.
    code = main(["eval", "--checkpoint", str(trained["checkpoint"]), "--data",
                 f"file://{trained['root']}/shards/test/manifest.json", "--no-mlflow", "--fid-dims", "64",
                 "--out", str(tmp_path / "default.json")])
    assert code == 0, capsys.readouterr().err
    default = json.loads((tmp_path / "default.json").read_text())
    assert default["threads_per_worker"] == usable_cpus()
    for key in ("l1", "ssim", "fid"):
        assert default["metrics"][key] == pytest.approx(result["metrics"][key], rel=1e-4, abs=1e-6), key


def test_a_bad_checkpoint_url_names_what_is_missing(trained, tmp_path, capsys):
    from orchestrator.cli import main

    manifest = f"file://{trained['root']}/shards/test/manifest.json"
    assert main(["eval", "--checkpoint", str(tmp_path / "nowhere"), "--data", manifest, "--no-mlflow"]) == 2
    assert "no checkpoint directory there" in capsys.readouterr().err
    partial = Path(shutil.copytree(trained["checkpoint"], tmp_path / "partial"))
    (partial / "state.pt").unlink()
    assert main(["eval", "--checkpoint", str(partial), "--data", manifest, "--no-mlflow"]) == 2
    assert "missing state.pt" in capsys.readouterr().err
    meta = json.loads((trained["checkpoint"] / "meta.json").read_text())
    old = Path(shutil.copytree(trained["checkpoint"], tmp_path / "old"))
    (old / "meta.json").write_text(json.dumps({k: v for k, v in meta.items() if k != "config"}))
    assert main(["eval", "--checkpoint", str(old), "--data", manifest, "--no-mlflow"]) == 2
    assert "records no run config" in capsys.readouterr().err
