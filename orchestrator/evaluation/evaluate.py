"""`vton eval`: generate for every sample of a shard set and compute every metric, on Ray.

Why shards are split per worker instead of read through ``ShardStream``: the training stream
pads every rank to equal batch counts by repeating samples, which is right for DDP and wrong for
a metric (a repeated image would count twice). Here worker ``i`` of ``W`` reads shards
``i, i+W, ...`` whole, in tar order, without augmentation, so every sample is scored exactly once
however many workers run. Each worker returns only its ``MetricSuite`` statistics (fixed size);
the driver merges them and computes the numbers. A sample that fails to decode is an error, not a
skip: a score on "the test set minus what broke" is not the protocol's number.

Generation uses the registered model's own run config (stored in the MLflow model metadata), so
resolution and representation are those the model was trained with.
"""

from __future__ import annotations

import json
import sys
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any, Iterator

import numpy as np
import torch

from orchestrator.hardware import torch_threads, usable_cpus
from orchestrator.registry.models import LoadedModel, ModelError, load_registered
from orchestrator.registry.uris import is_model_reference
from shards.progress import progress
from vton_models.metrics.masked import MASK_REGIONS
from vton_models.metrics.suite import METRIC_NETWORK_NAMES

#: The pretrained networks an evaluation can load (``SuiteOptions.networks``), with what they serve.
ALL_NETWORKS = METRIC_NETWORK_NAMES
NETWORK_METRICS = {"inception": "FID, KID, IS, mask-IS (Inception)", "lpips": "LPIPS (AlexNet)"}

EVAL_EXPERIMENT = "vton-eval"
BATCH_SIZE = 8


class EvalError(ModelError):
    """Something the user can fix: a bad data URL, option or input (``ModelError``: a bad model URI)."""


# ---------------------------------------------------------------------------------- the model


def load_model(uri: str) -> LoadedModel:
    """A registered model (``models:/...``) or a training checkpoint URL (s3://, file://, a path)."""
    if is_model_reference(uri):
        return load_registered(uri)
    from orchestrator.checkpoints.loading import CheckpointError, load_checkpoint_generator

    try:
        return load_checkpoint_generator(uri)
    except (CheckpointError, FileNotFoundError, OSError) as exc:
        raise EvalError(str(exc)) from None


# ------------------------------------------------------------------------------------ the data


def _cloth_index(manifest) -> dict[str, tuple[int, int]]:
    return {key: (s, i) for s, rec in enumerate(manifest.shards) for i, key in enumerate(rec.keys)}


def _fetch_cloth(manifest, store, index: dict, key: str, owner: str) -> tuple[np.ndarray, np.ndarray]:
    """The cloth image and mask of sample ``key`` (one ranged GET), for unpaired evaluation."""
    from shards.decode import decode_cloth
    from shards.tario import parse_sample

    if key not in index:
        raise EvalError(f"sample '{owner}': meta.unpaired_cloth_key '{key}' is not in this shard set")
    s, i = index[key]
    rec = manifest.shards[s]
    members = parse_sample(store.get_range(rec.name, rec.offsets[i], rec.offsets[i + 1]), store.url_for(rec.name), key)
    return decode_cloth(members, key)


def iter_eval_samples(manifest_url: str, worker: int, workers: int, pairs: str) -> Iterator[tuple[str, Any]]:
    """(key, DecodedSample) for shards ``worker::workers``, in tar order, each sample once."""
    import dataclasses

    import cv2

    from shards.decode import BadSampleError, decode_meta, decode_sample
    from shards.digests import damaged_members
    from shards.manifest import Manifest
    from shards.tario import scan_shard

    manifest = Manifest.load(manifest_url)
    store = manifest.store()
    index = _cloth_index(manifest) if pairs == "unpaired" else {}
    for rec in manifest.shards[worker::workers]:
        with store.open_read(rec.name) as stream:
            for scanned in scan_shard(stream, rec.name):
                damaged = damaged_members(scanned.members)
                if damaged:
                    raise EvalError(f"{store.url_for(rec.name)}: sample '{scanned.key}': {', '.join(damaged)} differ "
                                    "from the sha256 recorded at build time; evaluation does not skip samples "
                                    "(run `vton shard verify` on the manifest)")
                try:
                    sample = decode_sample(scanned.members, scanned.key)
                except BadSampleError as exc:
                    raise EvalError(f"{store.url_for(rec.name)}: {exc}; evaluation does not skip samples "
                                    "(run `vton shard verify` on the manifest)") from None
                if pairs == "unpaired":
                    meta = decode_meta(scanned.members.get("meta.json"), scanned.key)
                    other = meta.get("unpaired_cloth_key")
                    if not other:
                        raise EvalError(f"sample '{scanned.key}' has no meta.unpaired_cloth_key; unpaired "
                                        "evaluation needs a test split built from an unpaired pairs file")
                    cloth, mask = _fetch_cloth(manifest, store, index, other, scanned.key)
                    h, w = sample.person.shape[:2]
                    if cloth.shape[:2] != (h, w):
                        cloth = cv2.resize(cloth, (w, h), interpolation=cv2.INTER_AREA)
                        mask = cv2.resize(mask, (w, h), interpolation=cv2.INTER_NEAREST)
                    sample = dataclasses.replace(sample, cloth=cloth, cloth_mask=mask)
                yield scanned.key, sample


def eval_batches(manifest_url: str, worker: int, workers: int, pairs: str, image_size: tuple[int, int],
                 representation: str, options: dict, batch_size: int = BATCH_SIZE) -> Iterator[dict[str, Any]]:
    """Batches of the model's representation at the model's resolution (no augmentation)."""
    from shards.collate import collate
    from shards.transforms import resize_sample
    from vton_models.registry import get_representation

    keys, arrays = [], []
    for key, sample in iter_eval_samples(manifest_url, worker, workers, pairs):
        keys.append(key)
        arrays.append(get_representation(representation)(resize_sample(sample, image_size), **options))
        if len(keys) == batch_size:
            yield collate(arrays, keys)
            keys, arrays = [], []
    if keys:
        yield collate(arrays, keys)


# ---------------------------------------------------------------------------------- the worker


@dataclass(frozen=True)
class EvalTask:
    manifest_url: str
    pairs: str
    worker: int
    workers: int
    threads: int = 1
    batch_size: int = BATCH_SIZE
    fid_dims: int = 2048
    is_splits: int = 1
    mask_region: str = "foreground"
    networks: tuple[str, ...] = ALL_NETWORKS
    samples: int = 0  # test images in this task's shards (its progress bar's total), from the caller's manifest

    def suite_options(self) -> Any:
        from vton_models.metrics import SuiteOptions

        return SuiteOptions(paired=self.pairs == "paired", fid_dims=self.fid_dims, is_splits=self.is_splits,
                            mask_region=self.mask_region, networks=self.networks)


def evaluate_part(model: LoadedModel, task: EvalTask) -> dict[str, Any]:
    """Generate + accumulate for one worker's shards; returns ``MetricSuite.state_dict()``."""
    from orchestrator.recipes import build_recipe_from_config
    from orchestrator.registry.stages import attach_consumed_stages
    from vton_models.metrics import MetricSuite, to_unit_range

    with torch_threads(task.threads):
        cfg = model.config
        recipe = build_recipe_from_config(cfg)
        attach_consumed_stages(recipe)
        suite = MetricSuite(task.suite_options())
        representation = cfg.data.representation or recipe.representation.name
        bar = progress(task.samples, "eval" if task.workers == 1 else f"eval {task.worker + 1}/{task.workers}",
                       unit="images")
        unpaired = task.pairs == "unpaired"
        with torch.no_grad():
            for batch in eval_batches(task.manifest_url, task.worker, task.workers, task.pairs,
                                      tuple(cfg.data.image_size), representation, {"sigma": cfg.data.pose_sigma},
                                      task.batch_size):
                inputs = recipe.inputs(batch)
                fake = to_unit_range(recipe.generate(model.networks, inputs))
                real = to_unit_range(recipe.target(inputs))
                garment = (to_unit_range(batch["cloth"]), batch["cloth_mask"]) if unpaired else None
                suite.update(fake, real, list(batch["__key__"]), batch["parse"], garment)
                bar.update(len(batch["__key__"]))
        bar.close()
        return suite.state_dict()


def _ray_part(model_ref, task: EvalTask) -> dict[str, Any]:
    import vton_models  # noqa: F401  - torchvision CPU shim in the Ray worker process

    return evaluate_part(model_ref, task)


# -------------------------------------------------------------------------------------- driver


@dataclass
class EvalResult:
    model_uri: str
    model_name: str | None
    model_version: str | None
    data: str
    pairs: str
    workers: int
    seconds: float
    metrics: dict[str, float]
    protocol: dict[str, Any] = field(default_factory=dict)
    mlflow_run_id: str | None = None
    threads_per_worker: int = 1  # with ``workers``, what ``seconds`` was measured on

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, default=float)

    def table(self) -> str:
        lines = [f"{self.model_uri} on {self.data} ({self.pairs}, {int(self.metrics['images'])} images, "
                 f"{self.seconds:.1f}s, {self.workers} workers x {self.threads_per_worker} threads)"]
        if self.protocol.get("generated_from"):
            lines.append(f"  generated from: {self.protocol['generated_from']}")
        lines += [f"  {name:20s} {value:.6g}" for name, value in self.metrics.items() if name != "images"]
        return "\n".join(lines)


def protocol_card(image_size: tuple[int, int], is_splits: int = 1, mask_region: str = "foreground") -> dict[str, Any]:
    """What the numbers mean; stored with every result so a JSON file explains itself."""
    from importlib.metadata import version

    return {
        "is": "one split over the whole set" + (
            f"; is_split_* / mask_is_split_*: mean and std over {is_splits} equal splits of the set ordered by "
            "sample-key hash (the same for any worker count)" if is_splits > 1 else ""),
        "mask": f"mask_ssim / mask_is keep the real person's {mask_region} "
                f"({', '.join(map(str, MASK_REGIONS[mask_region])) if MASK_REGIONS[mask_region] else 'every label but 0'}"
                " of the LIP parse), the rest set to black in both images",
        "resolution_hw": list(image_size), "colour": "RGB, 8-bit quantised, values in [0, 1]",
        "resize": "cv2.INTER_AREA (shrink) / INTER_LINEAR (enlarge) to the model's data.image_size; "
                  "Inception: bilinear to 299x299 inside pytorch-fid",
        "ssim": "11x11 Gaussian sigma 1.5, K=(0.01, 0.03), data_range 1, per RGB channel, valid region",
        "versions": {p: version(p) for p in ("torch", "pytorch-fid", "lpips")},
        "doc": "docs/evaluation.md",
    }


@contextmanager
def _private_ray(workers: int) -> Iterator[None]:
    """A private in-process Ray cluster for the evaluation tasks, shut down when they are done.

    Private: evaluation must not depend on which code a long-running head has on its workers'
    path; its tasks inherit this process's environment. Shut down: a second live Ray instance on
    the node makes every address auto-detection there ambiguous ("Found multiple active Ray
    instances"), which breaks, e.g., Ray Train's placement-group cleaner in a running sweep.
    """
    import ray

    if ray.is_initialized():  # the caller's cluster: theirs to keep
        yield
        return
    ray.init(address="local", num_cpus=workers, include_dashboard=False, log_to_driver=True,
             configure_logging=False)
    try:
        yield
    finally:
        ray.shutdown()


def evaluated_inputs(model: LoadedModel, teacher_forced: bool) -> str:
    """What the evaluated images were generated from, for the result card; a teacher-forced stage
    (its generator reads the ground truth of the person it re-renders) only when asked for."""
    from orchestrator.recipes import build_recipe_from_config

    recipe = build_recipe_from_config(model.config)
    forcing = recipe.teacher_forcing()
    if forcing is None:
        return ("inference chain: every stage reads what the previous one predicted for the given garment"
                if recipe.inference_only else "the model's own inputs (no ground truth besides the target)")
    if not teacher_forced:
        family = recipe.name.split(".")[0]
        raise EvalError(f"--model {model.uri}: the '{recipe.name}' stage is teacher-forced ({forcing}); its numbers "
                        f"are not try-on numbers. Evaluate the family's try-on chain (models:/vton-{family}@champion), "
                        "or pass --teacher-forced to evaluate this stage as it was trained (labelled as such)")
    return f"TEACHER-FORCED stage '{recipe.name}': {forcing}"


def run_eval(model_uri: str, data: str, pairs: str = "paired", workers: int = 1, threads_per_worker: int = 1,
             batch_size: int = BATCH_SIZE, log_to_mlflow: bool = True, fid_dims: int = 2048,
             teacher_forced: bool = False, is_splits: int = 1, mask_region: str = "foreground",
             networks: tuple[str, ...] = ALL_NETWORKS) -> EvalResult:
    """Evaluate ``model_uri`` on manifest ``data`` with ``workers`` Ray tasks; log the result.

    A teacher-forced training stage is refused unless ``teacher_forced`` (its result card then says so).
    ``is_splits`` > 1 adds IS and mask-IS as mean and std over that many splits (seed 002's protocol);
    ``mask_region`` is what the masked metrics keep (seed 004's cloth or face_hair regions);
    ``networks`` the pretrained networks to load (the others' metrics are skipped, and so are their
    weight files: a promotion gate judging on L1 needs neither); ``threads_per_worker`` 0 shares this
    machine's cores among the workers."""
    from shards.manifest import Manifest
    from vton_models.metrics import MetricSuite

    if pairs not in ("paired", "unpaired"):
        raise EvalError(f"--pairs {pairs!r}: allowed paired, unpaired")
    if workers < 1:
        raise EvalError(f"--workers {workers}: must be >= 1")
    if threads_per_worker < 0:
        raise EvalError(f"--threads {threads_per_worker}: must be >= 1, or 0 for this machine's cores")
    if is_splits < 1:
        raise EvalError(f"--is-splits {is_splits}: must be >= 1")
    if mask_region not in MASK_REGIONS:
        raise EvalError(f"--mask {mask_region!r}: allowed {', '.join(MASK_REGIONS)}")
    manifest = Manifest.load(data)
    if manifest.num_samples == 0:
        raise EvalError(f"--data {data}: the manifest lists no samples")
    workers = min(workers, len(manifest.shards))
    threads_per_worker = threads_per_worker or max(1, usable_cpus() // workers)
    model = load_model(model_uri)
    generated_from = evaluated_inputs(model, teacher_forced)
    start = time.monotonic()
    tasks = [EvalTask(data, pairs, i, workers, threads_per_worker, batch_size, fid_dims, is_splits, mask_region,
                      tuple(networks), sum(rec.samples for rec in manifest.shards[i::workers]))
             for i in range(workers)]
    skipped = [NETWORK_METRICS[n] for n in ALL_NETWORKS if n not in networks]
    if skipped:
        print(f"[vton] eval: skipping {'; '.join(skipped)}: not needed here", file=sys.stderr, flush=True)
    if workers == 1:
        states = [evaluate_part(model, tasks[0])]
    else:
        import ray

        with _private_ray(workers * threads_per_worker):
            remote = ray.remote(num_cpus=threads_per_worker)(_ray_part)
            ref = ray.put(model)
            states = ray.get([remote.remote(ref, t) for t in tasks])
    suite = MetricSuite(tasks[0].suite_options())
    for state in states:
        suite.merge_state(state)
    metrics = suite.compute()
    result = EvalResult(model_uri, model.name, model.version, data, pairs, workers, time.monotonic() - start,
                        metrics, {"generated_from": generated_from,
                                  **protocol_card(tuple(model.config.data.image_size), is_splits, mask_region),
                                  **({"skipped": skipped} if skipped else {})},
                        threads_per_worker=threads_per_worker)
    if log_to_mlflow:
        result.mlflow_run_id = log_eval_run(result)
    return result


def log_eval_run(result: EvalResult) -> str:
    """An MLflow run holding the metrics and JSON, linked both ways to the model version."""
    import mlflow
    from mlflow import MlflowClient

    mlflow.set_experiment(EVAL_EXPERIMENT)
    tags = {"vton.model_uri": result.model_uri, "vton.model_name": result.model_name or "",
            "vton.model_version": result.model_version or "", "vton.eval_data": result.data,
            "vton.pairs": result.pairs}
    subject = f"{result.model_name}-v{result.model_version}" if result.model_name else \
        result.model_uri.rstrip("/").rsplit("/", 2)[-2]  # a checkpoint: its run name
    name = f"eval-{subject}-{result.pairs}"
    with mlflow.start_run(run_name=name, tags=tags) as run:
        mlflow.log_params({"data": result.data, "pairs": result.pairs, "workers": result.workers,
                           "threads_per_worker": result.threads_per_worker})
        mlflow.log_metrics({f"{result.pairs}/{k}": float(v) for k, v in result.metrics.items()
                            if np.isfinite(v)})
        mlflow.log_dict(json.loads(result.to_json()), "eval/results.json")
        run_id = run.info.run_id
    if result.model_name and result.model_version:
        client = MlflowClient()
        version_tags = {f"vton.eval.{result.pairs}.run_id": run_id}
        version_tags.update({f"vton.eval.{result.pairs}.{key}": f"{result.metrics[key]:.6g}"
                             for key in ("fid", "ssim", "lpips") if key in result.metrics})
        for key, value in version_tags.items():
            _set_version_tag(client, result.model_name, result.model_version, key, value)
    return run_id


def _set_version_tag(client, name: str, version: str, key: str, value: str, attempts: int = 4) -> None:
    """Set a model-version tag; the last of concurrent writers wins.

    Two evaluations of one version at once (two promotions judging the same @champion) write the
    same keys. MLflow's SQL store reads then inserts, so the slower writer can hit the table's
    UNIQUE constraint; by then the row exists, and writing again updates it.
    """
    from mlflow.exceptions import MlflowException

    for attempt in range(attempts):
        try:
            client.set_model_version_tag(name, version, key, value)
            return
        except MlflowException as exc:
            if not ("UNIQUE constraint" in str(exc) or "IntegrityError" in str(exc)) or attempt == attempts - 1:
                raise
            time.sleep(0.05 * (attempt + 1))
