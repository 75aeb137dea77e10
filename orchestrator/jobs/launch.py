"""Build and run the Ray Train V2 ``TorchTrainer`` for a config (``jobs.preflight`` checks it first).

``_train_fn`` is what every Ray Train worker runs: it turns Ray's context (rank, device, restored
checkpoint, ``ray.train.report``) into the trainer's ``WorkerContext``; nothing below it knows Ray.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence

from orchestrator import credentials
from orchestrator.checkpoints.retention import prune_unregistered_checkpoints
from orchestrator.checkpoints.storage import run_storage
from orchestrator.config import Config, config_from_dict
from orchestrator.credentials import CREDENTIALS_FILE_ENV
from orchestrator.provenance import GIT_COMMIT_ENV, git_commit

#: Seconds Ray Train's controller waits for a worker group to start; `vton tune` sets a default
#: (tune/sweep.py, SWEEP_WORKER_START_TIMEOUT_S), forwarded to the trials like the variables below.
WORKER_START_TIMEOUT_ENV = "RAY_TRAIN_WORKER_GROUP_START_TIMEOUT_S"

#: Environment a training worker needs to reach object storage and MLflow. No keys: they travel by
#: reference (VTON_CREDENTIALS_FILE) or come from the nodes' environment, see credentials.py.
FORWARDED_ENV = (
    "VTON_S3_ENDPOINT", "AWS_ENDPOINT_URL_S3", "MLFLOW_S3_ENDPOINT_URL", CREDENTIALS_FILE_ENV,
    "AWS_DEFAULT_REGION", "MLFLOW_TRACKING_URI", "VTON_GIT_COMMIT", "TORCH_HOME",
    "VTON_BUCKET", "TORCH_EXTENSIONS_DIR", WORKER_START_TIMEOUT_ENV,
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


# ------------------------------------------------------------------------------ worker


def _train_fn(config: dict) -> None:
    """Runs on every Ray Train worker."""
    import ray.train
    import torch

    from orchestrator.train.loop import WorkerContext, train_worker

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
    torch.set_num_threads(cfg.ray.worker_threads)
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
    with _restored(checkpoint) as restore_dir:
        ctx.restore_dir = restore_dir
        train_worker(cfg, ctx)


@contextlib.contextmanager
def _restored(checkpoint: Any) -> Iterator[Path]:
    """The checkpoint as a local directory of this process's own. Ray's ``as_directory`` shares one
    download among the processes of a node that open the same checkpoint: a PBT donor and the trial
    exploiting it start from the same one at the same moment, and one of them read a half-written
    ``state.pt`` ("PytorchStreamReader failed reading file", CI on f7c0fc4). A local checkpoint is
    read where it lies."""
    import pyarrow.fs

    if isinstance(checkpoint.filesystem, pyarrow.fs.LocalFileSystem):
        yield Path(checkpoint.path)
        return
    with tempfile.TemporaryDirectory(prefix="vton-restore-") as tmp:
        yield Path(checkpoint.to_directory(tmp))


def build_trainer(cfg: Config, callbacks: Sequence[Any] = (), init_checkpoint: Any = None):
    """The TorchTrainer for ``cfg``. ``callbacks`` (Ray Train ``UserCallback``s) and
    ``init_checkpoint`` (a ``ray.train.Checkpoint`` to start from when the run has none of its own)
    are what a Tune trial adds: reports forwarded to Tune, a PBT donor's weights."""
    from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchConfig, TorchTrainer

    from orchestrator.train.precision_auto import resolve_precision

    cfg = resolve_precision(cfg)  # `auto` measured on a worker (cached per device type); fp16 on CPU warned
    storage_path, filesystem = run_storage(cfg)
    backend = cfg.strategy.backend if cfg.strategy.backend != "auto" else ("nccl" if cfg.ray.use_gpu else "gloo")
    env = {k: os.environ[k] for k in FORWARDED_ENV if k in os.environ}
    env[GIT_COMMIT_ENV] = git_commit()  # workers may run from a copy without .git (Tune trials do)
    if os.environ.get("VTON_TORCH_EXTENSIONS_DIR"):  # DeepSpeed's JIT build cache (deepspeed_shm_comm on CPU)
        env["TORCH_EXTENSIONS_DIR"] = os.environ["VTON_TORCH_EXTENSIONS_DIR"]
    env.update({"OMP_NUM_THREADS": str(cfg.ray.worker_threads), "MKL_NUM_THREADS": str(cfg.ray.worker_threads)})
    # Ray Train sends a worker's print() to its logger *and*, when anything (MLflow) has wrapped
    # sys.stdout, to stdout too: every progress line reached the job log twice.
    env["RAY_TRAIN_ENABLE_PRINT_PATCH"] = "0"
    env.update(QUIET_JOB_ENV)
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
            failure_config=FailureConfig(max_failures=max_failures(cfg)),
            checkpoint_config=CheckpointConfig(num_to_keep=cfg.checkpoint.keep),
            worker_runtime_env={"env_vars": env},
            callbacks=list(callbacks),
        ),
    )


def max_failures(cfg: Config) -> int:
    """``ray.max_failures``, or its default: 3 on GPU clusters (spot nodes get reclaimed), 2 on CPU.
    With 0 a run died on its first lost worker although its last checkpoint was on object storage;
    a failure that repeats (bad data, a bug) costs at most that many restarts from the checkpoint."""
    if cfg.ray.max_failures is not None:
        return cfg.ray.max_failures
    return 3 if cfg.ray.use_gpu else 2


#: Set in every job process: MLflow's artifact download bars ('\r' redraws) flooded job logs with
#: one long line per consumed stage or restored model.
QUIET_JOB_ENV = {"MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false"}


def describe_workers(cfg: Config) -> str:
    """``2 workers of 1 CPU`` / ``4 workers of 8 CPU + 1 GPU``: what the run asks the cluster for."""
    each = {"CPU": cfg.ray.cpus_per_worker, **({"GPU": 1} if cfg.ray.use_gpu else {}), **cfg.ray.resources_per_worker}
    return f"{cfg.ray.num_workers} worker(s) of " + " + ".join(f"{v:g} {k}" for k, v in each.items())


def _free_resources() -> str:
    import ray

    try:
        free = ray.available_resources()
    except Exception:  # noqa: BLE001 - a phase line must never stop a run
        return "unknown"
    return ", ".join(f"{free[k]:g} {k}" for k in ("CPU", "GPU") if k in free) or "none"


def fit(cfg: Config) -> TrainingOutcome:
    """Run the trainer on the Ray cluster this process is connected to; returns rank 0's outcome."""
    print(f"[vton] phase: waiting for {describe_workers(cfg)} "
          f"(free now: {_free_resources()}); each worker says when it starts", flush=True)
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



