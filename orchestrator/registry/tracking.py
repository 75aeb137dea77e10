"""MLflow tracking, on rank 0 only: params, per-step metrics, sample grids, the registered model.

A resumed run must continue the *same* MLflow run, so the run id travels inside each checkpoint;
before the first checkpoint exists, the run is found again by its ``vton.run_name`` tag. A resumed
attempt re-runs the steps between its checkpoint and the failure; their points are already in the
run, so each metric is logged only for steps after the last one it holds (MLflow appends points,
it cannot replace them), and each step appears once in every history. A job that ends without
finishing its run marks it FAILED or KILLED (``end_unfinished_run``) instead of leaving it RUNNING.
"""

from __future__ import annotations

import os
import tempfile
from typing import Mapping, Sequence

import numpy as np
import torch
from torch import nn

from orchestrator.config import Config

RUN_NAME_TAG = "vton.run_name"
#: Every network's weights of a registered stage: an extra file of the logged model.
STAGE_WEIGHTS = "stage_weights.pt"


#: Cells are enlarged (by a whole factor, pixels kept crisp) to at least this height: a 64x48
#: test image or a 256x192 one is otherwise too small to judge a garment by.
MIN_CELL_HEIGHT = 192
_LABEL_HEIGHT = 22


def image_grid(panels: Sequence[torch.Tensor], max_rows: int = 4, scale: int = 1) -> np.ndarray:
    """Rows = samples, columns = panels (each (B,C,H,W) in [-1, 1]), each cell enlarged ``scale``
    times; returns HxWx3 uint8 (the try-on sheets stack these)."""
    rows = []
    for i in range(min(max_rows, panels[0].shape[0])):
        cells = []
        for panel in panels:
            cell = panel[i].detach().float().cpu()
            if cell.shape[0] == 1:
                cell = cell.expand(3, -1, -1)
            cells.append(cell[:3])
        rows.append(torch.cat(cells, dim=2))
    grid = torch.cat(rows, dim=1)
    if scale > 1:
        grid = torch.nn.functional.interpolate(grid[None], scale_factor=scale, mode="nearest")[0]
    return ((grid.clamp(-1, 1) + 1) * 127.5).round().byte().permute(1, 2, 0).numpy()


def sample_grid(columns: Mapping[str, torch.Tensor], max_rows: int = 4) -> np.ndarray:
    """Rows = samples, one column per entry (label -> (B, C, H, W) in [-1, 1]) under a header row
    with the labels, cells enlarged to ``MIN_CELL_HEIGHT``; returns HxWx3 uint8."""
    from PIL import Image, ImageDraw, ImageFont

    height, width = next(iter(columns.values())).shape[-2:]
    scale = max(1, -(-MIN_CELL_HEIGHT // height))
    pixels = image_grid(list(columns.values()), max_rows, scale)
    sheet = Image.new("RGB", (pixels.shape[1], pixels.shape[0] + _LABEL_HEIGHT), "white")
    sheet.paste(Image.fromarray(pixels), (0, _LABEL_HEIGHT))
    draw = ImageDraw.Draw(sheet)
    try:
        font = ImageFont.load_default(size=14)
    except TypeError:  # Pillow without FreeType: the small bitmap font
        font = ImageFont.load_default()
    for j, label in enumerate(columns):
        left = j * width * scale
        text_width = draw.textlength(label, font=font)
        draw.text((left + max(2, (width * scale - text_width) / 2), 3), label, fill="black", font=font)
    return np.asarray(sheet)


def registered_model_name(cfg: Config) -> str:
    return cfg.tracking.model_name or f"vton-{cfg.model.recipe}"


class NullTracker:
    run_id: str | None = None

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None: ...

    def log_sample_grid(self, image: np.ndarray, step: int, key: str = "train_samples") -> None: ...

    def set_tags(self, tags: Mapping[str, str]) -> None: ...

    def log_dataset(self, url: str, sha256: str, context: str) -> None: ...

    def log_stage(self, generators: Mapping[str, nn.Module], weights: Mapping[str, Mapping[str, dict]],
                  cfg: Config, tags: Mapping[str, str], example=None) -> str | None:
        return None

    def log_generator(self, generator: nn.Module, cfg: Config, tags: Mapping[str, str], name: str = "G") -> str | None:
        return None

    def close(self, status: str = "FINISHED") -> None: ...


class MlflowTracker(NullTracker):
    def __init__(self, cfg: Config, resume_run_id: str | None) -> None:
        import mlflow

        self._mlflow = mlflow
        uri = cfg.tracking.uri or os.environ.get("MLFLOW_TRACKING_URI")
        if not uri:
            raise RuntimeError("tracking.uri is empty and MLFLOW_TRACKING_URI is not set; start the stack "
                               "(`vton stack up`) or set tracking.enabled=false")
        mlflow.set_tracking_uri(uri)
        experiment = mlflow.set_experiment(cfg.tracking.experiment)
        # An explicit run (a Tune trial's child run) wins over the one a checkpoint names: a PBT
        # trial restores a donor trial's checkpoint but must keep logging into its own run.
        run_id = cfg.tracking.run_id or resume_run_id or self._find_unfinished_run(experiment.experiment_id, cfg.name)
        run = mlflow.start_run(
            run_id=run_id, run_name=None if run_id else cfg.name,
            tags=None if run_id else {RUN_NAME_TAG: cfg.name, "vton.recipe": cfg.model.recipe, **source_tags()},
            log_system_metrics=cfg.tracking.system_metrics,
        )
        self.run_id = run.info.run_id
        #: metric key -> the last step the run holds for it (a resumed run; empty for a new one)
        self._logged_through: dict[str, int] = self._last_steps(run) if run_id else {}
        if not run.data.params:
            # Params are immutable in MLflow; a resumed run already has them (a run created for this
            # one elsewhere, such as a Tune trial's child run, does not yet).
            flat = cfg.flat()
            keys = sorted(flat)
            for start in range(0, len(keys), 100):
                mlflow.log_params({k: flat[k] for k in keys[start:start + 100]})
            mlflow.log_text(cfg.to_yaml(), "config/resolved.yaml")

    def _find_unfinished_run(self, experiment_id: str, name: str) -> str | None:
        runs = self._mlflow.search_runs(
            [experiment_id], filter_string=f"tags.`{RUN_NAME_TAG}` = '{name}' and attributes.status != 'FINISHED'",
            order_by=["attributes.start_time DESC"], max_results=1, output_format="list",
        )
        return runs[0].info.run_id if runs else None

    def _last_steps(self, run) -> dict[str, int]:
        client = self._mlflow.MlflowClient()
        return {key: max((m.step for m in client.get_metric_history(run.info.run_id, key)), default=-1)
                for key in run.data.metrics}

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        fresh = {k: float(v) for k, v in metrics.items() if step > self._logged_through.get(k, -1)}
        if fresh:
            self._mlflow.log_metrics(fresh, step=step)

    def log_sample_grid(self, image: np.ndarray, step: int, key: str = "train_samples") -> None:
        if step > max(self._logged_through.values(), default=-1):  # an earlier attempt logged this step's grid
            self._mlflow.log_image(image, key=key, step=step)

    def set_tags(self, tags: Mapping[str, str]) -> None:
        if tags:
            self._mlflow.set_tags(dict(tags))

    def log_dataset(self, url: str, sha256: str, context: str) -> None:
        """The shard manifest as the run's dataset input (MLflow's Datasets tab): its URL as the
        source and its sha256 as the digest (MLflow keeps 36 characters; the tag has all 64)."""
        from mlflow.data.dataset_source_registry import resolve_dataset_source
        from mlflow.data.meta_dataset import MetaDataset

        source = resolve_dataset_source(url)
        name = "/".join(url.rstrip("/").split("/")[-3:-1]) or url  # .../shards/<split>/manifest.json -> shards/<split>
        self._mlflow.log_input(MetaDataset(source, name=name, digest=sha256[:36]), context=context)
        self._mlflow.set_tag(f"vton.dataset.{context}.sha256", sha256)

    def log_stage(self, generators: Mapping[str, nn.Module], weights: Mapping[str, Mapping[str, dict]],
                  cfg: Config, tags: Mapping[str, str], example=None) -> str | None:
        """Log a trained stage as an MLflow PyTorch model and register it; returns the version.

        The model is what generation runs: the generator itself, or an ``nn.ModuleDict`` of them
        when the stage has several ("pickle" keeps real modules: fine-tunable, needs vton-train
        where it is loaded). Beside it, as an extra file of the same model, ``STAGE_WEIGHTS``
        holds every network's plain state dict (discriminators too) and the EMA copies, so any
        later stage can start from any of them (``model.init.<network>``) and the weights survive
        any later change to the network classes.

        ``example`` (``orchestrator.registry.serving.ServingExample``) gives the pyfunc input
        example and signature; the model carries ``vton_models`` as code and pins what it imports,
        so `mlflow.pyfunc.load_model` works where vton-train is not installed.
        """
        import mlflow.pytorch
        from mlflow import MlflowClient
        from mlflow.models import infer_signature

        from orchestrator.registry.serving import CODE_PATHS, pip_requirements

        name = registered_model_name(cfg) if cfg.tracking.register_model else None
        served = {n: g.cpu().eval() for n, g in generators.items()}
        model = next(iter(served.values())) if len(served) == 1 else nn.ModuleDict(served)
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, STAGE_WEIGHTS)
            torch.save({"generators": sorted(served), "networks": dict(weights.get("networks", {})),
                        "ema": dict(weights.get("ema", {}))}, path)
            served_by = "pyfunc" if example is not None and example.inputs is not None else (
                example.why if example is not None else "vton tryon")
            info = mlflow.pytorch.log_model(
                model, name="generator", registered_model_name=name, serialization_format="pickle",
                pip_requirements=pip_requirements(), code_paths=CODE_PATHS,
                signature=infer_signature(example.inputs, example.outputs) if served_by == "pyfunc" else None,
                input_example=example.logged_example if served_by == "pyfunc" else None,
                metadata={"vton_config": cfg.to_dict(), "vton_generators": sorted(served),
                          "vton_served_by": served_by, **tags},
                extra_files=[path],
            )
        if name is None:
            return None
        version = str(info.registered_model_version)
        client = MlflowClient()
        for key, value in tags.items():
            client.set_model_version_tag(name, version, key, value)
        self._mlflow.set_tags({"vton.registered_model": name, "vton.registered_version": version})
        return version

    def log_generator(self, generator: nn.Module, cfg: Config, tags: Mapping[str, str], name: str = "G") -> str | None:
        """A stage made of one generator and nothing else (an import of released weights)."""
        return self.log_stage({name: generator}, {"networks": {name: generator.state_dict()}}, cfg, tags)

    def close(self, status: str = "FINISHED") -> None:
        self._mlflow.end_run(status=status)


def source_tags() -> dict[str, str]:
    """Where the run came from, in MLflow's own tags: the `vton` entrypoint (not Ray's
    default_worker.py, which MLflow guesses inside a Ray worker) and the project's git commit."""
    from orchestrator.provenance import git_commit

    tags = {"mlflow.source.name": "vton (orchestrator.jobs.launch)", "mlflow.source.type": "JOB"}
    commit = git_commit()
    if commit != "unknown":
        tags["mlflow.source.git.commit"] = commit
    return tags


def end_unfinished_run(cfg: Config, status: str) -> str | None:
    """Mark the run ``cfg.name`` is training ``status`` (FAILED, KILLED) if it is still RUNNING:
    what the job's driver does when training ends without finishing it (the rank-0 worker that
    would have ended it was killed, or the job was stopped). Returns the run id it ended, if any.
    A later resubmission of the same name still continues this run."""
    from mlflow import MlflowClient

    uri = cfg.tracking.uri or os.environ.get("MLFLOW_TRACKING_URI")
    if not cfg.tracking.enabled or not uri:
        return None
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name(cfg.tracking.experiment)
    if experiment is None:
        return None
    runs = client.search_runs([experiment.experiment_id],
                              filter_string=f"tags.`{RUN_NAME_TAG}` = '{cfg.name}' and attributes.status = 'RUNNING'",
                              order_by=["attributes.start_time DESC"], max_results=1)
    if not runs:
        return None
    client.set_terminated(runs[0].info.run_id, status=status)
    return runs[0].info.run_id


def make_tracker(cfg: Config, rank: int, resume_run_id: str | None) -> NullTracker:
    if rank != 0 or not cfg.tracking.enabled:
        return NullTracker()
    return MlflowTracker(cfg, resume_run_id)
