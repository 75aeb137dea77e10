"""Everything that can be checked on the driver before a run reaches the cluster.

A typo, an unknown recipe or a model that does not fit the data must fail in seconds, before any
worker is scheduled; every error is a ``ConfigError`` naming the key at fault.
"""

from __future__ import annotations

import logging
import math
from typing import Collection

from orchestrator.config import Config, ConfigError, validate_environment
from orchestrator.jobs.capacity import Capacity

log = logging.getLogger("vton.preflight")


def preflight(cfg: Config, where: Capacity | int | None, pending: Collection[str] = ()) -> None:
    """Checks that need the recipe registry and the data; raises ConfigError naming the culprit.

    ``where``: the capacity of where the run executes (``Capacity.of_ray_cluster()`` in a job's
    entrypoint, ``Capacity.this_machine()`` for ``vton train``; an int is one machine with that many
    GPUs); None: checked away from it (GPUs, nodes and pretrained files unknown here), and the job's
    own preflight on the cluster checks them again.
    """
    if isinstance(where, int):
        where = Capacity.this_machine(where)
    from orchestrator.recipes import build_recipe_from_config, refuse_inference_only
    from orchestrator.registry.stages import pin_consumed_stages, pin_initial_weights
    from orchestrator.train.optim import resolve_optimizers

    if where is not None:
        validate_environment(cfg, where.gpus, where.gpus_reachable)
        _check_checkpoint_storage(cfg, where)
    try:
        recipe = build_recipe_from_config(cfg)
    except (ValueError, KeyError) as exc:
        raise ConfigError(str(exc).strip("'\"")) from None
    refuse_inference_only(recipe)
    resolve_optimizers(cfg, recipe)  # per-network keys name networks of this recipe
    if cfg.strategy.name == "deepspeed":
        _check_deepspeed(cfg, recipe)
    for key, uri in pin_consumed_stages(cfg, recipe, pending).items():
        log.info("model.%s pinned to %s", key, uri)
    for network, uri in pin_initial_weights(cfg, recipe).items():
        log.info("model.init.%s pinned to %s", network, uri)
    if where is not None:
        _check_pretrained_weights(recipe)
    if not cfg.data.manifest:
        raise ConfigError("data.manifest is empty: point it at a manifest.json written by `vton shard build`")
    _check_data_fits_model(cfg, recipe)


def _check_checkpoint_storage(cfg: Config, where: Capacity) -> None:
    """Ray Train uploads every worker's checkpoint to ``storage_path``; a path on one node's disk is
    refused from a worker on another node at the first checkpoint, so refuse it here instead."""
    from orchestrator.checkpoints.storage import is_node_local, storage_url

    url = storage_url(cfg)
    if where.nodes_reachable > 1 and is_node_local(url) and not cfg.checkpoint.shared_filesystem:
        nodes = (f"{where.nodes} nodes" if where.nodes > 1 else
                 f"{where.nodes} node now, up to {where.nodes_reachable} with the autoscaler")
        raise ConfigError(
            f"checkpoint.storage_path: {url} is on each node's own disk, and {where.where} has {nodes}; Ray Train "
            "cannot collect checkpoints there. Use object storage (set VTON_BUCKET, giving "
            "s3://$VTON_BUCKET/checkpoints, or checkpoint.storage_path=s3://BUCKET/PREFIX), or set "
            "checkpoint.shared_filesystem=true if that path is a filesystem every node mounts (NFS, Lustre)")


def _check_pretrained_weights(recipe) -> None:
    """The pretrained files the run's losses load (e.g. VGG19 for a perceptual term), where the run
    starts: a missing file would otherwise fail every retry at the first step."""
    from vton_models.weights import MissingWeightsError, require

    for name in recipe.required_weights():
        try:
            require(name)
        except MissingWeightsError as exc:
            raise ConfigError(f"loss.weights: recipe '{recipe.name}' needs pretrained '{name}' weights with these "
                              f"loss weights: {exc}") from None

def _check_deepspeed(cfg: Config, recipe) -> None:
    """Combinations DeepSpeed 0.19.8 cannot run, refused on the driver before any worker starts."""
    from orchestrator.train.strategy.deepspeed import load_override

    if cfg.precision.mode == "fp16" and not cfg.ray.use_gpu:
        raise ConfigError(
            "precision.mode: 'fp16' with strategy.name=deepspeed needs GPUs: DeepSpeed's fp16 casts the networks "
            "to half precision, which its CPU accelerator refuses on most CPUs ('Type fp16 is not supported on "
            "your device'; only AVX512-FP16 ones take it) and which vton does not train on CPU. On CPU use "
            "precision.mode=bf16 or fp32 (or strategy.name=ddp for fp16 autocast + GradScaler); on GPUs set "
            "ray.use_gpu=true")
    if cfg.precision.mode == "fp16" and math.log2(cfg.precision.init_scale) % 1 != 0:
        raise ConfigError(f"precision.init_scale: {cfg.precision.init_scale} must be a power of two with "
                          "strategy.name=deepspeed (DeepSpeed configures it as fp16.initial_scale_power)")
    penalties = {k: v for k, v in getattr(recipe, "loss_weights", {}).items() if (k == "gp" or k.endswith("_gp")) and v}
    if penalties:  # ``gp``, or one per discriminator (seed 004's d1_gp, d2_gp, ...)
        key, value = next(iter(penalties.items()))
        raise ConfigError(
            f"loss.weights.{key}: {value} (gradient penalty) is not supported with "
            "strategy.name=deepspeed: its double backward (torch.autograd.grad through D's engine) runs DeepSpeed's "
            "backward hooks outside engine.backward, which raises at ZeRO 0 and is not a supported gradient path "
            "at ZeRO 1/2. Set " + ", ".join(f"loss.weights.{k}=0" for k in penalties) + " or use strategy.name=ddp")
    if cfg.precision.mode == "fp16":
        shared = [p.name for p in recipe.phases if len(p.networks) > 1]
        if shared:
            raise ConfigError(
                f"precision.mode: 'fp16' with strategy.name=deepspeed cannot train phase(s) {shared} of recipe "
                f"'{recipe.name}', which step several networks with one loss: each DeepSpeed engine scales its "
                "own loss, and the shared gradients would be formed before those scales. Use precision.mode=bf16, "
                "or strategy.name=ddp (one GradScaler per network)")
    load_override(cfg)  # a missing or malformed strategy.deepspeed_config fails here, not on the workers

def _check_data_fits_model(cfg: Config, recipe) -> None:
    """Decode one real sample and compare the channels it yields with what the recipe reads."""
    from orchestrator.train.data import probe_batch_shapes
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
