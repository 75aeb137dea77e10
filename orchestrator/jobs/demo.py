"""`vton demo`: the whole design card once, on embedded defaults.

local stack -> synthetic VITON-HD set -> WebDataset shards on the S3 server -> `ray job submit`
of a 2-worker DDP GAN run (grad_accum 2) -> MLflow run + registered model, with held-out L1/SSIM
of the untrained and the trained generator printed side by side, then every test person dressed in
another person's garment: the garment transfer score of both generators and a try-on sheet
(person | new garment | result) written to disk and logged to the run. A try-on that does not
change the garment is the failure L1 and SSIM cannot show. Last, the promotion gate gives the new
version ``@champion`` (or says why not), and the demo prints the URIs and commands to go on with.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from orchestrator.config import Config, load_config

DEMO_CONFIG = Path(__file__).resolve().parents[2] / "configs" / "unet_sa" / "demo.yaml"
DEMO_SAMPLES = 96


def _step(message: str) -> None:
    print(f"==> {message}", flush=True)


def _precision(cfg: Config, forced: bool) -> tuple[str, str]:
    """The measured choice (``precision_auto``: cached per model and machine, so repeated demos skip
    the probe), unless the command line set one."""
    if forced:
        return cfg.precision.mode, f"{cfg.precision.mode}: set on the command line"
    from orchestrator.train.precision_auto import measured_choice

    choice = measured_choice(cfg)
    return choice.mode, choice.reason + (" (measured earlier on this machine)" if choice.cached else "")


def run_demo(overrides: list[str], verbose: bool = False) -> int:
    from cluster import stack
    from cluster.settings import StackSettings
    from orchestrator.jobs import submit as jobs
    from shards.synthetic import synthesize
    from shards.writer import build_shards

    started = time.monotonic()
    cfg = load_config(DEMO_CONFIG, overrides)  # validated before anything starts
    settings = StackSettings.from_env()
    _step("local stack (Ray head, S3 server, MLflow server)")
    env = stack.up(settings)
    os.environ.update(env)

    demo_dir = settings.state_dir.parent / "demo"
    data_dir = demo_dir / "data"
    _step(f"synthetic VITON-HD dataset: {DEMO_SAMPLES} samples at {cfg.data.image_size[0]}x{cfg.data.image_size[1]}")
    if not (data_dir / "train_pairs.txt").is_file():
        synthesize(data_dir, n=DEMO_SAMPLES, size=tuple(cfg.data.image_size), seed=0)
    for split, url in (("train", cfg.data.manifest), ("test", cfg.data.val_manifest)):
        dest = url.rsplit("/", 1)[0]
        manifest = build_shards("viton_hd", data_dir, split, dest, shard_size_bytes="1MB", workers=1)
        stats = manifest.build_stats
        print(f"    {split}: {stats.samples} samples, {stats.shards} shards -> {dest} "
              f"({stats.uploaded} uploaded, {stats.skipped} already there)")

    forced = any(o.startswith("precision.mode=") for o in overrides)
    mode, reason = _precision(cfg, forced)
    _step(f"precision: {reason}")
    run_name = f"{cfg.name}-{time.strftime('%Y%m%d-%H%M%S')}"
    cfg = load_config(DEMO_CONFIG, [*overrides, f"precision.mode={mode}", f"name={run_name}"])

    strategy = "DDP" if cfg.strategy.name == "ddp" else f"DeepSpeed ZeRO-{cfg.strategy.zero_stage}"
    _step(f"ray job submit: {cfg.ray.num_workers} {strategy} workers, {cfg.precision.mode}, grad_accum "
          f"{cfg.train.grad_accum}, {cfg.train.steps} steps")
    client, job_id = jobs.submit(cfg)
    print(f"    job {job_id} on {jobs.job_address(cfg)}")
    outcome = jobs.wait(client, job_id, jobs.progress_printer(verbose))
    if outcome.status != "SUCCEEDED" or not outcome.result:
        print("\n".join(outcome.logs.splitlines()[-60:]))
        print(f"error: the demo job ended {outcome.status}")
        return 1
    code = _report(outcome.result, env, cfg, time.monotonic() - started)
    if code == 0:
        code = _unpaired_tryon(outcome.result, cfg, demo_dir)
    if code == 0:
        code = _promote(outcome.result, cfg, env, data_dir)
    return code


def _promote(result: dict, cfg: Config, env: dict[str, str], data_dir: Path) -> int:
    """The way real use ends: the new version through the gate against the champion (none on a
    first demo), judged on held-out L1 (no pretrained network needed); then what to try next."""
    import contextlib
    import sys

    from orchestrator.registry.promotion import promote
    from orchestrator.registry.tracking import registered_model_name

    name = registered_model_name(cfg)
    _step(f"promotion gate: version {result['model_version']} of {name} against @champion on held-out L1")
    with contextlib.redirect_stdout(sys.stderr):  # MLflow's "View run" lines: the summary stays readable
        outcome = promote(name, cfg.data.val_manifest, candidate=str(result["model_version"]), metric="l1")
    champion = outcome.after["champion"]
    print(f"    {outcome.decision.upper()}: {outcome.reason}")
    cloth = sorted((data_dir / "test" / "cloth").glob("*.jpg"))[-1]
    print()
    print(f"champion:          models:/{name}@champion (version {champion})")
    print(f"MLflow UI:         {env['MLFLOW_TRACKING_URI']}/#/models/{name}")
    print("next, with the stack's variables (set -a; . .vton/stack/stack.env; set +a):")
    print(f"  vton eval --model models:/{name}@champion --data {cfg.data.val_manifest} --fid-dims 64")
    print(f"  vton tryon --model models:/{name}@champion --person {data_dir / 'test'} --cloth {cloth} --out out/")
    print(f"  vton promote {name} --rollback   # @champion back to the version before it")
    return 0


def _unpaired_tryon(result: dict, cfg: Config, demo_dir: Path) -> int:
    """Dress each test person in another's garment with the untrained and the trained generator."""
    import cv2
    from mlflow import MlflowClient

    from orchestrator.evaluation.transfer import describe_score, unpaired_tryon
    from orchestrator.recipes import build_recipe_from_config
    from orchestrator.registry.models import load_registered
    from orchestrator.registry.tracking import registered_model_name
    from orchestrator.train.loop import seed_everything

    uri = f"models:/{registered_model_name(cfg)}/{result['model_version']}"
    _step(f"unpaired try-on of the test split (each person in another person's garment) with {uri}")
    trained = load_registered(uri)
    recipe = build_recipe_from_config(trained.config)
    seed_everything(trained.config.train.seed)  # the generator the run started from
    before = unpaired_tryon(recipe, recipe.build_networks(), trained.config, cfg.data.val_manifest)
    after = unpaired_tryon(recipe, trained.networks, trained.config, cfg.data.val_manifest)
    sheet = (demo_dir / "tryon_sheet.png").resolve()
    cv2.imwrite(str(sheet), cv2.cvtColor(after.sheet, cv2.COLOR_RGB2BGR))
    client = MlflowClient()
    client.log_image(result["mlflow_run_id"], after.sheet, "tryon/unpaired_sheet.png")
    for when, outcome in (("untrained", before), ("trained", after)):
        if outcome.score["transfer_score"] is not None:
            client.log_metric(result["mlflow_run_id"], f"unpaired/transfer_score_{when}", outcome.score["transfer_score"])
    print(f"garment transfer score (garment_input={trained.config.model.options['garment_input']}; fraction of "
          "people whose garment region took the new garment's colour)")
    print(f"  untrained       {describe_score(before.score)}")
    print(f"  trained         {describe_score(after.score)}")
    print(f"try-on sheet:      {sheet} (person | new garment | result), also in the MLflow run")
    return 0


def _report(result: dict, env: dict[str, str], cfg: Config, seconds: float) -> int:
    from mlflow import MlflowClient

    from orchestrator.registry.tracking import registered_model_name

    uri = env["MLFLOW_TRACKING_URI"]
    run = MlflowClient(uri).get_run(result["mlflow_run_id"])
    before, after = result["val_before"], result["val_after"]
    print()
    print(f"MLflow run:        {uri}/#/experiments/{run.info.experiment_id}/runs/{run.info.run_id}")
    print(f"registered model:  {registered_model_name(cfg)} version {result['model_version']}")
    print(f"held-out ({int(after['val/images'])} images)   untrained   trained")
    print(f"  L1  (lower)     {before['val/l1']:9.4f} {after['val/l1']:9.4f}")
    print(f"  SSIM (higher)   {before['val/ssim']:9.4f} {after['val/ssim']:9.4f}")
    print(f"  PSNR (higher)   {before['val/psnr']:9.2f} {after['val/psnr']:9.2f} dB")
    print(f"done in {seconds:.0f}s")
    improved = after["val/l1"] < before["val/l1"] and after["val/ssim"] > before["val/ssim"]
    if not improved:
        print("error: the trained model is not better than the untrained one on held-out data")
        return 1
    return 0
