"""Earlier stages a recipe consumes, loaded from the MLflow model registry (never from copied files).

A multi-stage family (VITON-HD: seg -> GMM -> ALIAS) names its inputs as registered models in the
config (``model.gmm: models:/vton-viton_hd-gmm@champion``). On the driver, ``pin_consumed_stages``
resolves an alias to the version it points at *now* and rewrites the config with
``models:/NAME/VERSION``: the run, its logged config and every model registered from it then refer
to exactly the network that was used, even after ``@champion`` moves. On every worker (and at
evaluation and try-on), ``attach_consumed_stages`` loads those versions frozen into the recipe.
"""

from __future__ import annotations

from orchestrator.config import Config, ConfigError
from vton_models.recipe import Recipe


def consumed_stage_uris(recipe: Recipe) -> dict[str, str]:
    """``{key: models:/...}`` for every stage the recipe consumes that the config names."""
    return {key: str(recipe.model_options[key]) for key in recipe.consumes if recipe.model_options.get(key)}


def _stage_recipe_name(uri: str) -> str | None:
    from mlflow.models import get_model_info

    meta = get_model_info(uri).metadata or {}
    return (meta.get("vton_config") or {}).get("model", {}).get("recipe")


def pin_consumed_stages(cfg: Config, recipe: Recipe) -> dict[str, str]:
    """Resolve each consumed ``models:/`` URI to its version, check it is the right kind of model,
    and write the pinned URI back into ``cfg.model.options``; returns the pinned URIs."""
    from orchestrator.registry.models import ModelError, resolve_version

    pinned = {}
    for key, uri in consumed_stage_uris(recipe).items():
        try:
            name, version = resolve_version(uri)
        except ModelError as exc:
            raise ConfigError(f"model.{key}: {str(exc).split(': ', 1)[-1]}") from None
        pinned_uri = f"models:/{name}/{version}"
        kind = _stage_recipe_name(pinned_uri)
        if kind is None:
            raise ConfigError(f"model.{key}: {uri} ({pinned_uri}) was not logged by vton's tracking "
                              "(no vton_config metadata); register stages by training them with vton")
        if kind != recipe.consumes[key]:
            raise ConfigError(f"model.{key}: {uri} is a '{kind}' model; recipe '{recipe.name}' needs a "
                              f"'{recipe.consumes[key]}' model there")
        cfg.model.options[key] = pinned_uri
        pinned[key] = pinned_uri
    return pinned


def attach_consumed_stages(recipe: Recipe) -> None:
    """Load each consumed stage (generator + its run config) and hand it to the recipe, frozen."""
    from orchestrator.registry.models import load_registered
    from orchestrator.recipes import build_recipe_from_config

    for key, uri in consumed_stage_uris(recipe).items():
        stage = load_registered(uri)
        recipe.attach_stage(key, build_recipe_from_config(stage.config), stage.generator)
