"""Build and run the Ray Train V2 ``TorchTrainer`` for a config, after checking everything that can
be checked on the driver: a typo, an unknown recipe or a model that does not fit the data must fail
in seconds, before any worker is scheduled.
"""

from __future__ import annotations

import json
import logging
import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Sequence
from urllib.parse import urlparse

from orchestrator import credentials
from orchestrator.checkpoint_retention import prune_unregistered_checkpoints
from orchestrator.config import Config, ConfigError, config_from_dict, validate_environment
from orchestrator.credentials import CREDENTIALS_FILE_ENV

log = logging.getLogger("vton.launch")

#: Environment a training worker needs to reach object storage and MLflow. No keys: they travel by
#: reference (VTON_CREDENTIALS_FILE) or come from the nodes' environment, see credentials.py.
FORWARDED_ENV = (
    "VTON_S3_ENDPOINT", "AWS_ENDPOINT_URL_S3", "MLFLOW_S3_ENDPOINT_URL", CREDENTIALS_FILE_ENV,
    "AWS_DEFAULT_REGION", "MLFLOW_TRACKING_URI", "VTON_GIT_COMMIT", "TORCH_HOME",
    "VTON_BUCKET", "TORCH_EXTENSIONS_DIR",
)


@dataclass
class TrainingOutcome:
    name: str
    steps: int
    metrics: dict[str, Any]
    checkpoint: str | None
    mlflow_run_id: str | None
    model_version: str | None
    val_before: dict[str, float] | None
    val_after: dict[str, float] | None

    def to_json(self) -> str:
        return json.dumps(asdict(self), default=str)


# ------------------------------------------------------------------------------ preflight


def preflight(cfg: Config, gpus_visible: int | None) -> None:
    """Checks that need the recipe registry and the data; raises ConfigError naming the culprit.

    ``gpus_visible=None``: checked away from where the run executes (GPUs unknown here); the job's
    own preflight on the cluster checks the environment again.
    """
    from orchestrator.loop import build_recipe_from_config
    from orchestrator.stages import pin_consumed_stages

    if gpus_visible is not None:
        validate_environment(cfg, gpus_visible)
    try:
        recipe = build_recipe_from_config(cfg)
    except (ValueError, KeyError) as exc:
        raise ConfigError(str(exc).strip("'\"")) from None
    if cfg.strategy.name == "deepspeed":
        _check_deepspeed(cfg, recipe)
    for key, uri in pin_consumed_stages(cfg, recipe).items():
        log.info("model.%s pinned to %s", key, uri)
    if not cfg.data.manifest:
        raise ConfigError("data.manifest is empty: point it at a manifest.json written by `vton shard build`")
    _check_data_fits_model(cfg, recipe)


def _check_deepspeed(cfg: Config, recipe) -> None:
    """Combinations DeepSpeed 0.19.8 cannot run, refused on the driver before any worker starts."""
    from orchestrator.strategy_deepspeed import load_override

    if cfg.precision.mode == "fp16" and not cfg.ray.use_gpu:
        raise ConfigError(
            "precision.mode: 'fp16' with strategy.name=deepspeed needs GPUs: DeepSpeed's fp16 optimizer refuses "
            "the CPU accelerator ('Type fp16 is not supported on your device'). On CPU use precision.mode=bf16 "
            "or fp32 (or strategy.name=ddp for fp16 autocast + GradScaler); on GPUs set ray.use_gpu=true")
    if cfg.precision.mode == "fp16" and math.log2(cfg.precision.init_scale) % 1 != 0:
        raise ConfigError(f"precision.init_scale: {cfg.precision.init_scale} must be a power of two with "
                          "strategy.name=deepspeed (DeepSpeed configures it as fp16.initial_scale_power)")
    if getattr(recipe, "loss_weights", {}).get("gp", 0) != 0:
        raise ConfigError(
            f"loss.weights.gp: {recipe.loss_weights['gp']} (gradient penalty) is not supported with "
            "strategy.name=deepspeed: its double backward (torch.autograd.grad through D's engine) runs DeepSpeed's "
            "backward hooks outside engine.backward, which raises at ZeRO 0 and is not a supported gradient path "
            "at ZeRO 1/2. Set loss.weights.gp=0 or use strategy.name=ddp")
    load_override(cfg)  # a missing or malformed strategy.deepspeed_config fails here, not on the workers


def _check_data_fits_model(cfg: Config, recipe) -> None:
    """Decode one real sample and compare the channels it yields with what the recipe reads."""
    from orchestrator.data import probe_batch_shapes
    from vton_models.registry import get_representation

    representation = cfg.data.representation or recipe.representation.name
    try:
        if cfg.data.representation_on == "consumer":
            get_representation(representation).require_device_form()
    except ValueError as exc:
        raise ConfigError(f"data.representation: {exc}" if "unknown" in str(exc)
                          else f"data.representation_on: {exc}") from None
    try:
        shapes = probe_batch_shapes(cfg.data.manifest, representation,
                                    tuple(cfg.data.image_size), {"sigma": cfg.data.pose_sigma})
    except FileNotFoundError as exc:
        raise ConfigError(f"data.manifest: {exc}") from None
    for field, channels in recipe.batch_fields.items():
        if field not in shapes:
            raise ConfigError(
                f"data/model mismatch: recipe '{recipe.name}' reads batch field '{field}' but representation "
                f"'{representation}' does not produce it "
                f"(it produces {sorted(shapes)})")
        if shapes[field][0] != channels:
            raise ConfigError(
                f"data/model mismatch: recipe '{recipe.name}' expects '{field}' with {channels} channels, "
                f"the data gives {shapes[field][0]} (shape {list(shapes[field])}); check data.representation")


# ------------------------------------------------------------------------------ storage


def run_storage(cfg: Config) -> tuple[str, Any]:
    """(storage_path, pyarrow filesystem or None) for Ray Train's RunConfig."""
    return storage_location(storage_url(cfg))


def storage_url(cfg: Config) -> str:
    """Where runs keep checkpoints, as a URL: checkpoint.storage_path, else the stack's bucket."""
    if cfg.checkpoint.storage_path:
        return cfg.checkpoint.storage_path
    bucket = os.environ.get("VTON_BUCKET")
    if os.environ.get("VTON_S3_ENDPOINT") and bucket:
        return f"s3://{bucket}/checkpoints"
    return str(Path.home() / ".vton" / "checkpoints")


def storage_location(url: str) -> tuple[str, Any]:
    """``s3://bucket/key`` | ``file:///path`` | a path -> (path for pyarrow, filesystem or None).

    S3 goes through a pyarrow filesystem aimed at the stack's (or the user's) endpoint, because
    Ray Train and pyarrow would otherwise talk to AWS itself.
    """
    parsed = urlparse(url)
    if parsed.scheme == "s3":
        from pyarrow import fs

        credentials.load()  # a Ray job driver or Tune trial gets the keys by reference

        endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("VTON_S3_ENDPOINT")
        kwargs: dict[str, Any] = {"region": os.environ.get("AWS_DEFAULT_REGION", "us-east-1")}
        if endpoint:
            ep = urlparse(endpoint)
            kwargs.update(endpoint_override=ep.netloc, scheme=ep.scheme or "http")
        if os.environ.get("AWS_ACCESS_KEY_ID"):
            kwargs.update(access_key=os.environ["AWS_ACCESS_KEY_ID"], secret_key=os.environ["AWS_SECRET_ACCESS_KEY"])
        return f"{parsed.netloc}{parsed.path}".rstrip("/"), fs.S3FileSystem(**kwargs)
    if parsed.scheme == "file":
        return parsed.path, None
    return str(Path(url).expanduser().resolve()), None


# ------------------------------------------------------------------------------ worker


def _train_fn(config: dict) -> None:
    """Runs on every Ray Train worker."""
    import ray.train
    import torch

    from orchestrator.loop import WorkerContext, train_worker

    credentials.load()
    cfg = config_from_dict(config["cfg"])
    context = ray.train.get_context()
    # This run's own latest checkpoint (a retry or resubmission) wins over the one it was started
    # from (a Tune PBT trial's copy of a donor's checkpoint).
    checkpoint = ray.train.get_checkpoint() or config.get("init_checkpoint")
    # Where each rank runs, once per attempt: shows placement (and re-placement after a lost node).
    print(f"[vton] worker {context.get_world_rank()}/{context.get_world_size()} on node "
          f"{ray.get_runtime_context().get_node_id()[:12]} "
          f"({'resuming' if checkpoint is not None else 'starting'})", flush=True)
    threads = cfg.ray.threads_per_worker or max(1, int(cfg.ray.cpus_per_worker))
    torch.set_num_threads(threads)
    if cfg.ray.use_gpu:
        import ray.train.torch

        device = ray.train.torch.get_device()
    else:
        device = torch.device("cpu")

    def report(metrics: dict, directory: Path | None) -> None:
        checkpoint = ray.train.Checkpoint.from_directory(str(directory)) if directory else None
        ray.train.report(metrics, checkpoint=checkpoint)

    ctx = WorkerContext(rank=context.get_world_rank(), world_size=context.get_world_size(), device=device,
                        report=report)
    if checkpoint is None:
        train_worker(cfg, ctx)
        return
    with checkpoint.as_directory() as restore_dir:
        ctx.restore_dir = Path(restore_dir)
        train_worker(cfg, ctx)


def build_trainer(cfg: Config, callbacks: Sequence[Any] = (), init_checkpoint: Any = None):
    """The TorchTrainer for ``cfg``. ``callbacks`` (Ray Train ``UserCallback``s) and
    ``init_checkpoint`` (a ``ray.train.Checkpoint`` to start from when the run has none of its own)
    are what a Tune trial adds: reports forwarded to Tune, a PBT donor's weights."""
    from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchConfig, TorchTrainer

    storage_path, filesystem = run_storage(cfg)
    backend = cfg.strategy.backend if cfg.strategy.backend != "auto" else ("nccl" if cfg.ray.use_gpu else "gloo")
    env = {k: os.environ[k] for k in FORWARDED_ENV if k in os.environ}
    if os.environ.get("VTON_TORCH_EXTENSIONS_DIR"):  # DeepSpeed's JIT build cache (deepspeed_shm_comm on CPU)
        env["TORCH_EXTENSIONS_DIR"] = os.environ["VTON_TORCH_EXTENSIONS_DIR"]
    threads = cfg.ray.threads_per_worker or max(1, int(cfg.ray.cpus_per_worker))
    env.update({"OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)})
    return TorchTrainer(
        _train_fn,
        train_loop_config={"cfg": cfg.to_dict(), "init_checkpoint": init_checkpoint},
        torch_config=TorchConfig(backend=backend),
        scaling_config=ScalingConfig(
            num_workers=cfg.ray.num_workers, use_gpu=cfg.ray.use_gpu,
            resources_per_worker={"CPU": cfg.ray.cpus_per_worker, **cfg.ray.resources_per_worker},
            placement_strategy=cfg.ray.placement_strategy,
        ),
        run_config=RunConfig(
            name=cfg.name, storage_path=storage_path, storage_filesystem=filesystem,
            failure_config=FailureConfig(max_failures=cfg.ray.max_failures),
            checkpoint_config=CheckpointConfig(num_to_keep=cfg.checkpoint.keep),
            worker_runtime_env={"env_vars": env},
            callbacks=list(callbacks),
        ),
    )


def fit(cfg: Config) -> TrainingOutcome:
    """Run the trainer on the Ray cluster this process is connected to; returns rank 0's outcome."""
    result = build_trainer(cfg).fit()
    if result.error:
        raise result.error
    orphans = prune_unregistered_checkpoints(*run_storage(cfg), cfg.name)
    if orphans:
        print(f"[vton] removed {len(orphans)} checkpoint(s) an interrupted attempt left unregistered: "
              f"{', '.join(orphans)}", flush=True)
    metrics = dict(result.metrics or {})
    return TrainingOutcome(
        name=cfg.name, steps=int(metrics.get("step", 0)), metrics=metrics,
        checkpoint=result.checkpoint.path if result.checkpoint else None,
        mlflow_run_id=metrics.get("mlflow_run_id"), model_version=metrics.get("model_version"),
        val_before=metrics.get("val_before"), val_after=metrics.get("val_after"),
    )


def gpus_on_this_machine() -> int:
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def gpus_in_ray_cluster() -> int:
    import ray

    return int(ray.cluster_resources().get("GPU", 0))
