"""Everything that can be checked on the driver before a run reaches the cluster.

A typo, an unknown recipe or a model that does not fit the data must fail in seconds, before any
worker is scheduled; every error is a ``ConfigError`` naming the key at fault.
"""

from __future__ import annotations

import logging
import math

from orchestrator.config import Config, ConfigError, validate_environment

log = logging.getLogger("vton.preflight")


def preflight(cfg: Config, gpus_visible: int | None) -> None:
    """Checks that need the recipe registry and the data; raises ConfigError naming the culprit.

    ``gpus_visible=None``: checked away from where the run executes (GPUs unknown here); the job's
    own preflight on the cluster checks the environment again.
    """
    from orchestrator.recipes import build_recipe_from_config
    from orchestrator.registry.stages import pin_consumed_stages, pin_initial_weights
    from orchestrator.train.optim import resolve_optimizers

    if gpus_visible is not None:
        validate_environment(cfg, gpus_visible)
    try:
        recipe = build_recipe_from_config(cfg)
    except (ValueError, KeyError) as exc:
        raise ConfigError(str(exc).strip("'\"")) from None
    resolve_optimizers(cfg, recipe)  # per-network keys name networks of this recipe
    if cfg.strategy.name == "deepspeed":
        _check_deepspeed(cfg, recipe)
    for key, uri in pin_consumed_stages(cfg, recipe).items():
        log.info("model.%s pinned to %s", key, uri)
    for network, uri in pin_initial_weights(cfg, recipe).items():
        log.info("model.init.%s pinned to %s", network, uri)
    if not cfg.data.manifest:
        raise ConfigError("data.manifest is empty: point it at a manifest.json written by `vton shard build`")
    _check_data_fits_model(cfg, recipe)

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
    if getattr(recipe, "loss_weights", {}).get("gp", 0) != 0:
        raise ConfigError(
            f"loss.weights.gp: {recipe.loss_weights['gp']} (gradient penalty) is not supported with "
            "strategy.name=deepspeed: its double backward (torch.autograd.grad through D's engine) runs DeepSpeed's "
            "backward hooks outside engine.backward, which raises at ZeRO 0 and is not a supported gradient path "
            "at ZeRO 1/2. Set loss.weights.gp=0 or use strategy.name=ddp")
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
