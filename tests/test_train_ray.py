"""The trainer through the real stack: `ray job submit` -> Ray Train DDP workers -> S3 checkpoints -> MLflow."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from plugins import data as data_plugin
import yaml

from orchestrator.jobs import submit as jobs
from orchestrator.config import load_config

REPO = Path(__file__).resolve().parents[1]
VTON = str(Path(sys.executable).parent / "vton")


@pytest.fixture(scope="module")
def s3_shards(stack, tmp_path_factory) -> str:
    return data_plugin.s3_shards(tmp_path_factory.mktemp("ray-train"), stack.bucket, "ray-train", n=32, seed=5)


def _overrides(prefix: str, name: str) -> list[str]:
    return [
        f"name={name}", f"data.manifest={prefix}/train/manifest.json", f"data.val_manifest={prefix}/test/manifest.json",
        "data.batch_size=2", "model.ngf=8", "model.ndf=8", "precision.mode=fp32", "train.steps=24",
        "train.grad_accum=2", "train.log_every=2", "train.eval_every=0", "train.eval_batches=2",
        "train.sample_every=12", "checkpoint.every_n_steps=4", "checkpoint.storage_path=s3://vton/checkpoints",
        "tracking.experiment=vton-tests", f"tracking.model_name=vton-test-{name}", "ray.num_workers=2",
    ]


def _checkpoints(stack, name: str) -> list[str]:
    listing = stack.s3_client().list_objects_v2(Bucket="vton", Prefix=f"checkpoints/{name}/")
    return sorted({o["Key"].split("/")[2] for o in listing.get("Contents", [])
                   if o["Key"].endswith("/state.pt") and o["Key"].split("/")[2].startswith("checkpoint_")})


def _registered_checkpoints(stack, name: str) -> list[str]:
    """Checkpoints Ray's controller registered (a job killed between a worker's upload and the
    registration leaves an orphan that is neither resumed from nor kept)."""
    from orchestrator.checkpoints.retention import SNAPSHOT_FILENAME, registered_checkpoint_names

    try:
        body = stack.s3_client().get_object(Bucket="vton", Key=f"checkpoints/{name}/{SNAPSHOT_FILENAME}")["Body"]
    except stack.s3_client().exceptions.NoSuchKey:
        return []
    return sorted(registered_checkpoint_names(json.loads(body.read())))


@pytest.mark.slow
def test_killed_job_resumes_from_its_s3_checkpoint_in_the_same_mlflow_run(stack, s3_shards, tmp_path):
    from mlflow import MlflowClient

    name = f"resume-{uuid.uuid4().hex[:6]}"
    cfg = load_config(REPO / "configs" / "unet_sa" / "demo.yaml", _overrides(s3_shards, name))
    client, first_job = jobs.submit(cfg)
    deadline = time.monotonic() + 300
    while not _registered_checkpoints(stack, name):
        assert time.monotonic() < deadline, client.get_job_logs(first_job)[-3000:]
        assert str(client.get_job_status(first_job)) not in ("FAILED", "JobStatus.FAILED"), client.get_job_logs(first_job)
        time.sleep(1)
    client.stop_job(first_job)
    stopped = jobs.wait(client, first_job, on_line=lambda _l: None, timeout_s=120)
    assert stopped.status == "STOPPED", stopped.status
    assert len(_registered_checkpoints(stack, name)) >= 1
    mlflow = MlflowClient(stack.mlflow_uri)
    experiment_id = mlflow.get_experiment_by_name("vton-tests").experiment_id
    stopped_runs = mlflow.search_runs([experiment_id], filter_string=f"tags.`vton.run_name` = '{name}'")
    assert [r.info.status for r in stopped_runs] == ["KILLED"], stopped.logs[-3000:]  # not left RUNNING

    # The same run name through the CLI: `vton submit` (ray job submit) resumes it.
    config_file = tmp_path / "run.yaml"
    config_file.write_text(yaml.safe_dump(cfg.to_dict()))
    resubmitted_ms = time.time() * 1000
    out = subprocess.run([VTON, "submit", str(config_file), "--verbose"], capture_output=True, text=True,
                         timeout=600, cwd=REPO)
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-2000:]
    resumed_line = next(line for line in out.stdout.splitlines() if "[vton] resumed at step" in line)
    resumed_step = int(resumed_line.split("resumed at step ")[1].split()[0])
    assert resumed_step >= 4 and resumed_step % 4 == 0
    assert f"({resumed_step * 2} batches consumed)" in resumed_line  # grad_accum 2 micro-batches per step
    # Every line of the job once (Ray Train's print patch logged each twice), and its phases as they change.
    progress = [line for line in out.stdout.splitlines() if "[vton] step " in line]
    assert progress and len(progress) == len(set(progress)), progress
    phases = [line.split("[vton] phase: ")[1] for line in out.stdout.splitlines() if "[vton] phase: " in line]
    assert [p.split(" (")[0] for p in phases] == ["waiting for 2 worker(s) of 1 CPU", "restoring the checkpoint",
                                                  f"training, step {resumed_step} of 24"], phases

    result = next(json.loads(line[len(jobs.RESULT_PREFIX):]) for line in out.stdout.splitlines()
                  if line.startswith(jobs.RESULT_PREFIX))
    assert result["steps"] == 24
    assert result["metrics"]["steps_this_attempt"] == 24 - resumed_step
    assert result["metrics"]["batches_consumed"] == 48
    # One MLflow run across both jobs, with metrics before and after the kill, FINISHED again.
    runs = mlflow.search_runs([experiment_id], filter_string=f"tags.`vton.run_name` = '{name}'")
    assert len(runs) == 1 and runs[0].info.run_id == result["mlflow_run_id"]
    assert runs[0].info.status == "FINISHED"
    # Where it came from: the vton entrypoint (not Ray's default_worker.py), the commit, the dataset.
    run = mlflow.get_run(result["mlflow_run_id"])
    assert run.data.tags["mlflow.source.name"].startswith("vton") and len(run.data.tags["mlflow.source.git.commit"]) == 40
    (dataset_input,) = run.inputs.dataset_inputs  # logged once, not again by the resumed job
    sha = run.data.tags["vton.dataset.training.sha256"]
    assert dataset_input.dataset.digest == sha[:36] and dataset_input.dataset.source_type == "s3"
    assert json.loads(dataset_input.dataset.source)["uri"] == cfg.data.manifest and len(sha) == 64
    history = mlflow.get_metric_history(result["mlflow_run_id"], "loss/G_total")
    first_job_steps = [m.step for m in history if m.timestamp < resubmitted_ms]
    second_job_steps = sorted(m.step for m in history if m.timestamp >= resubmitted_ms)
    assert min(first_job_steps) == 2 and max(first_job_steps) >= resumed_step
    # The second job continued after the checkpoint; the steps the first one logged after its last
    # checkpoint are run again but not logged again: every step is in the history once.
    assert sorted(m.step for m in history) == list(range(2, 25, 2))
    assert second_job_steps == list(range(max(first_job_steps) + 2, 25, 2))
    # The registered model loads with plain `mlflow.pyfunc` in a fresh process, from its own copy of
    # vton_models (its requirements pin what that imports), and predicts its logged input example.
    model_uri = f"models:/vton-test-{name}/{result['model_version']}"
    served = subprocess.run([sys.executable, "-c", (
        "import mlflow.pyfunc, sys; m = mlflow.pyfunc.load_model(sys.argv[1]); out = m.predict(m.input_example); "
        "import vton_models; print(out.shape, m.metadata.metadata['vton_served_by'], vton_models.__file__)"), model_uri],
        capture_output=True, text=True, timeout=300, cwd="/", env={**os.environ, "MLFLOW_TRACKING_URI": stack.mlflow_uri})
    assert served.returncode == 0, served.stderr[-3000:]
    assert served.stdout.startswith("(1, 3, 64, 48) pyfunc ") and "/code/vton_models/" in served.stdout, served.stdout
    from mlflow.artifacts import download_artifacts

    requirements = Path(download_artifacts(f"{model_uri}/requirements.txt", tracking_uri=stack.mlflow_uri)).read_text()
    assert all(f"{d}==" in requirements for d in ("torch", "torchvision", "numpy", "pillow")), requirements
    # The registered model is tagged with what produced it.
    version = mlflow.get_model_version(f"vton-test-{name}", result["model_version"])
    assert version.tags["recipe"] == "unet_sa" and len(version.tags["dataset_manifest_sha256"]) == 64
    assert len(version.tags["git_commit"]) == 40  # a commit, passed to the job (its working dir has no .git)
    # Retention holds across the kill: what is on storage is exactly what Ray tracks, at most `keep`.
    assert _checkpoints(stack, name) == _registered_checkpoints(stack, name)
    assert len(_checkpoints(stack, name)) <= cfg.checkpoint.keep


def test_a_run_whose_driver_was_sigkilled_is_marked_failed_by_jobs_status(stack, s3_shards):
    """A driver killed with -9 cannot mark its MLflow run; the run said RUNNING until the name was
    resubmitted. `vton jobs status` of the ended job marks it FAILED (and says so)."""
    import os
    import signal

    from mlflow import MlflowClient

    name = f"orphan-{uuid.uuid4().hex[:6]}"
    cfg = load_config(REPO / "configs" / "unet_sa" / "demo.yaml",
                      [*_overrides(s3_shards, name), "train.steps=5000", "data.val_manifest=", "ray.num_workers=1"])
    client, job_id = jobs.submit(cfg)
    try:
        deadline = time.monotonic() + 300
        while "[vton] step 2/" not in client.get_job_logs(job_id):
            assert time.monotonic() < deadline and not str(client.get_job_status(job_id)).endswith("FAILED"), \
                client.get_job_logs(job_id)[-3000:]
            time.sleep(1)
        os.kill(int(client.get_job_info(job_id).driver_info.pid), signal.SIGKILL)
        ended = jobs.wait(client, job_id, on_line=lambda _l: None, timeout_s=120)
    finally:
        client.stop_job(job_id)
    assert ended.status == "FAILED", ended.status
    mlflow = MlflowClient(stack.mlflow_uri)
    experiment_id = mlflow.get_experiment_by_name("vton-tests").experiment_id
    run, = mlflow.search_runs([experiment_id], filter_string=f"tags.`vton.run_name` = '{name}'")
    assert run.info.status == "RUNNING"  # what the user used to be left with
    out = subprocess.run([VTON, "jobs", "status", job_id], capture_output=True, text=True, timeout=120, cwd=REPO)
    assert out.returncode == 0 and f"MLflow run {run.info.run_id} marked ended" in out.stdout, out.stdout + out.stderr
    assert mlflow.get_run(run.info.run_id).info.status == "FAILED"


@pytest.mark.slow
def test_demo_runs_end_to_end_and_beats_the_untrained_model(stack):
    """`vton demo` as the README runs it, at a quarter of its steps (the whole chain, ~150 s less):
    tests/test_garment_input.py trains its generator for 300 steps and checks the try-on it learns."""
    out = subprocess.run([VTON, "demo", "train.steps=100"], capture_output=True, text=True, timeout=1200, cwd=REPO)
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-3000:]
    text = out.stdout
    assert "==> precision: " in text
    assert "MLflow run:        http://127.0.0.1:" in text
    version_line = next(line for line in text.splitlines() if line.startswith("registered model:"))
    assert "vton-unet_sa-demo version" in version_line
    rows = {line.split()[0]: [float(v) for v in line.split()[-2:]]
            for line in text.splitlines() if line.strip().startswith(("L1", "SSIM"))}
    assert rows["L1"][1] < rows["L1"][0] and rows["SSIM"][1] > rows["SSIM"][0]
    # ... and it puts the new garment on: the transfer score of each generator, and the sheet on disk.
    assert "garment transfer score (garment_input=cloth_and_mask" in text
    scores = {line.split()[0]: float(line.split()[1]) for line in text.splitlines()
              if line.strip().startswith(("untrained ", "trained "))}
    assert scores["trained"] > scores["untrained"], text[-2000:]
    sheet = next(line for line in text.splitlines() if line.startswith("try-on sheet:")).split()[2]
    assert Path(sheet).is_file()
    # It ends as real use does: the gate gave the version @champion, and the next commands are printed.
    from mlflow import MlflowClient

    version = version_line.split()[-1]
    champion = MlflowClient(stack.mlflow_uri).get_model_version_by_alias("vton-unet_sa-demo", "champion")
    assert "PROMOTED" in text or "REJECTED" in text
    assert f"champion:          models:/vton-unet_sa-demo@champion (version {champion.version})" in text
    assert champion.version == version or "REJECTED" in text
    assert "  vton eval --model models:/vton-unet_sa-demo@champion --data s3://" in text
    assert "  vton tryon --model models:/vton-unet_sa-demo@champion --person " in text



def test_viton_hd_seg_stage_learns_in_fp16_with_accumulation_4_at_batch_1(stack, s3_shards):
    """The dissertation's settings (fp16 AMP with one GradScaler per network, batch 1, grad_accum 4)
    from the stack's S3 into its MLflow, in this process through the workers' entry (the seg stage
    runs as a Ray job in the `vton pipeline` test below; a job costs ~70 s of Ray start-up and exit
    here); CPU fp16 is ~30-90x slower than fp32, so 64x48 and 4 steps at 10x the shipped lr_g (0.014
    -> 0.088 pixel accuracy here; the shipped 1e-4 moved it by 0.004)."""
    from orchestrator.jobs.preflight import preflight
    from orchestrator.train.loop import WorkerContext, train_worker

    name = f"seg-fp16-{uuid.uuid4().hex[:6]}"
    cfg = load_config(REPO / "configs" / "viton_hd" / "seg.yaml", [
        f"name={name}", f"data.manifest={s3_shards}/train/manifest.json",
        f"data.val_manifest={s3_shards}/test/manifest.json", "data.image_size=64x48", "model.work_size=null",
        "model.ngf=8", "model.ndf=8", "train.steps=4", "train.lr_g=1e-3", "train.eval_batches=4",
        "train.sample_every=0", "train.log_every=2", "checkpoint.every_n_steps=4",
        "checkpoint.storage_path=s3://vton/checkpoints", "tracking.experiment=vton-tests",
        f"tracking.model_name=vton-test-{name}", "ray.num_workers=1",
        "ray.use_gpu=false", "precision.mode=fp16",  # the dissertation's; the shipped config measures (auto)
    ])
    assert (cfg.precision.mode, cfg.data.batch_size, cfg.train.grad_accum) == ("fp16", 1, 4)
    preflight(cfg, where=0)  # what the job's entrypoint checks and pins before its workers start
    result = train_worker(cfg, WorkerContext())
    assert result.steps_run == 4 and result.model_version
    before, after = result.val_before, result.val_after
    assert after["val/pixel_accuracy"] > before["val/pixel_accuracy"] + 0.02, (before, after)
    assert after["val/miou"] > before["val/miou"], (before, after)
    from mlflow import MlflowClient

    history = MlflowClient(stack.mlflow_uri).get_metric_history(result.mlflow_run_id, "scale/D")
    assert history and all(m.value > 0 for m in history)  # the fp16 loss scaler of D is live


@pytest.mark.slow
def test_vton_pipeline_trains_the_gmm_then_alias_on_the_version_it_just_registered(stack, s3_shards, tmp_path, capsys):
    import shutil

    from mlflow.models import get_model_info

    from orchestrator.cli import main

    stages = tmp_path / "viton_hd"
    stages.mkdir()
    for stage in ("alias", "gmm", "seg"):  # the repo's own stage configs
        shutil.copy(REPO / "configs" / "viton_hd" / f"{stage}.yaml", stages)
    tag = uuid.uuid4().hex[:6]
    overrides = [
        f"data.manifest={s3_shards}/train/manifest.json", f"data.val_manifest={s3_shards}/test/manifest.json",
        "data.image_size=64x64", "data.batch_size=2", "precision.mode=fp32", "train.grad_accum=1", "train.steps=2",
        "train.eval_batches=1", "train.sample_every=0", "checkpoint.every_n_steps=2",
        "checkpoint.storage_path=s3://vton/checkpoints", "tracking.experiment=vton-tests", "ray.num_workers=1",
        "ray.use_gpu=false", "gmm:model.ngf=8", "gmm:model.work_size=null", "alias:model.ngf=4",
        "alias:model.norm_hidden=8", "alias:model.num_upsampling_layers=normal", "alias:model.ndf=8",
        "alias:loss.weights.vgg=0", "seg:model.ngf=8", "seg:model.ndf=8", "seg:model.work_size=null",
        *(f"{s}:{k}" for s in ("gmm", "alias", "seg")
          for k in (f"name=pipe-{s}-{tag}", f"tracking.model_name=vton-test-pipe-{s}-{tag}")),
    ]
    chain = f"vton-test-pipe-{tag}"
    assert main(["pipeline", str(stages), "--chain-name", chain, *overrides]) == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    assert "pipeline: gmm (viton_hd.gmm) -> seg (viton_hd.seg) -> alias (viton_hd.alias)" in out, out
    gmm_uri = f"models:/vton-test-pipe-gmm-{tag}/1"
    assert f"==> alias: model.gmm = {gmm_uri}" in out
    alias_config = get_model_info(f"models:/vton-test-pipe-alias-{tag}/1").metadata["vton_config"]
    assert alias_config["model"]["gmm"] == gmm_uri  # the registered ALIAS names the exact GMM it trained on
    # ... and the pipeline ends with the family's try-on chain of exactly these versions, which tries on.
    assert f"==> try-on chain models:/{chain}/1" in out
    chain_config = get_model_info(f"models:/{chain}/1").metadata["vton_config"]
    assert {s: chain_config["model"][s] for s in ("seg", "gmm", "alias")} == {
        s: f"models:/vton-test-pipe-{s}-{tag}/1" for s in ("seg", "gmm", "alias")}
    from shards.synthetic import synthesize

    synthesize(tmp_path / "persons", n=4, size=(64, 64), seed=9)
    test_dir = tmp_path / "persons" / "test"
    cloth = sorted((test_dir / "cloth").iterdir())[0]
    code = main(["tryon", "--model", f"models:/{chain}@champion", "--person", str(test_dir), "--cloth", str(cloth),
                 "--out", str(tmp_path / "tryon")])
    assert code == 0, capsys.readouterr().err
    assert (tmp_path / "tryon" / "sheet.png").is_file()


def test_vton_train_drives_the_stacks_ray_and_deepspeed_keeps_only_its_last_checkpoints_on_s3(stack, s3_shards):
    """`vton train` with the stack up joins the stack's Ray (not a second, private instance), and a
    DeepSpeed ZeRO-2 run that writes more checkpoints than ``checkpoint.keep`` on the real S3 server
    ends successfully with exactly the ones Ray kept (ZeRO's nested folders once left emptied
    prefixes that failed retention after training)."""
    from ray.util.state import list_jobs

    name = f"ds-keep-{uuid.uuid4().hex[:6]}"
    overrides = [*_overrides(s3_shards, name), "train.steps=8", "train.grad_accum=1", "train.sample_every=0",
                 "checkpoint.every_n_steps=2", "checkpoint.keep=2", "strategy.name=deepspeed", "strategy.zero_stage=2",
                 "ray.cpus_per_worker=0.5", "ray.threads_per_worker=1"]
    out = subprocess.run([VTON, "train", str(REPO / "configs" / "unet_sa" / "demo.yaml"), *overrides, "--json"],
                         capture_output=True, text=True, timeout=600, cwd=REPO)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-5000:]
    assert f"driver on the local stack's Ray at {stack.settings.ray_gcs_address}" in out.stderr
    assert "multiple active Ray instances" not in out.stdout + out.stderr
    drivers = [j for j in list_jobs(address=stack.ray_job_address, detail=True)
               if j.type == "DRIVER" and "train" in (j.entrypoint or "") and name in (j.entrypoint or "")]
    assert drivers, "the run's driver is not a job of the stack's Ray head"
    result = next(json.loads(line) for line in reversed(out.stdout.splitlines()) if line.startswith('{"name"'))
    assert result["steps"] == 8 and result["model_version"]
    kept = _checkpoints(stack, name)
    assert len(kept) == 2 and kept == _registered_checkpoints(stack, name)
