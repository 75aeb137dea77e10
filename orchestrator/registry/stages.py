"""Earlier stages a run builds on, loaded from the MLflow model registry (never from copied files).

Two ways: a recipe *consumes* an earlier stage frozen (VITON-HD's ALIAS runs the registered GMM:
``model.gmm: models:/vton-viton_hd-gmm@champion``), and a run *starts* a trainable network from a
registered stage's weights and keeps training it (``model.init.<network>``: the joint stages of
Tree-Block and SPG-VTON start from their registered parts, discriminators included).

On the driver, ``pin_consumed_stages`` and ``pin_initial_weights`` resolve an alias to the version it
points at *now* and rewrite the config with ``models:/NAME/VERSION``: the run, its logged config and
every model registered from it then refer to exactly the networks that were used, even after
``@champion`` moves. On every worker (and at evaluation and try-on) ``attach_consumed_stages`` loads
the consumed stages frozen into the recipe, and ``load_initial_weights`` copies the starting weights
into the fresh networks before the strategy wraps them (a checkpoint resume then overrides them).
"""

from __future__ import annotations

from typing import Callable, Collection, Mapping

from torch import nn

from orchestrator.config import Config, ConfigError
from vton_models.recipe import Recipe


def consumed_stage_uris(recipe: Recipe) -> dict[str, str]:
    """``{key: models:/...}`` for every stage the recipe consumes that the config names."""
    return {key: str(recipe.model_options[key]) for key in recipe.consumes if recipe.model_options.get(key)}


def _stage_recipe_name(uri: str) -> str | None:
    from mlflow.models import get_model_info

    meta = get_model_info(uri).metadata or {}
    return (meta.get("vton_config") or {}).get("model", {}).get("recipe")


def pin_consumed_stages(cfg: Config, recipe: Recipe, pending: Collection[str] = ()) -> dict[str, str]:
    """Resolve each consumed ``models:/`` URI to its version, check it is the right kind of model,
    and write the pinned URI back into ``cfg.model.options``; returns the pinned URIs. A required
    stage left unset is an error unless its key is ``pending`` (a pipeline fills it before the job)."""
    from orchestrator.registry.models import ModelError, resolve_version

    for key, why in recipe.required_stages().items():
        if not recipe.model_options.get(key) and key not in pending:
            raise ConfigError(f"model.{key}: not set; {why} (model.{key}=models:/NAME@ALIAS)")
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


def attach_consumed_stages(recipe: Recipe, prepare: Callable[[nn.Module], nn.Module] | None = None) -> None:
    """Load each consumed stage (generator + its run config) and hand it to the recipe, frozen.

    ``prepare``: applied to each loaded network first; the trainer puts them in its memory format
    (``train.channels_last``) so a frozen stage runs in the layout the trained networks do."""
    from orchestrator.registry.models import load_registered
    from orchestrator.recipes import build_recipe_from_config

    for key, uri in consumed_stage_uris(recipe).items():
        stage = load_registered(uri)
        networks = {name: prepare(net) for name, net in stage.networks.items()} if prepare else stage.networks
        recipe.attach_stage(key, build_recipe_from_config(stage.config), networks)


# --------------------------------------------------------------------------------------- warm start


def pin_initial_weights(cfg: Config, recipe: Recipe) -> dict[str, str]:
    """Check every ``model.init.<network>`` and pin it to a version (``#NETWORK`` kept); returns them.

    Checked here, before any worker: the network exists in this recipe, the registered stage exists,
    was trained by vton (and by the recipe ``Recipe.initializes`` names, where it names one), and
    holds the network asked for with exactly the shapes this recipe builds.
    """
    from orchestrator.registry.models import ModelError, load_network_weights, resolve_version, split_network

    names = [spec.name for spec in recipe.networks]
    pinned = {}
    fresh = recipe.build_networks() if cfg.model.init else {}
    for network, uri in cfg.model.init.items():
        key = f"model.init.{network}"
        if network not in names:
            raise ConfigError(f"{key}: recipe '{recipe.name}' has no network {network!r} (its networks: "
                              f"{', '.join(names)})")
        base, source = split_network(uri)
        try:
            name, version = resolve_version(base)
        except ModelError as exc:
            raise ConfigError(f"{key}: {str(exc).split(': ', 1)[-1]}") from None
        pinned_uri = f"models:/{name}/{version}" + (f"#{source}" if source else "")
        kind = _stage_recipe_name(f"models:/{name}/{version}")
        wanted = recipe.initializes[network].partition("#")[0] if network in recipe.initializes else None
        if kind is None:
            raise ConfigError(f"{key}: {uri} was not logged by vton's tracking (no vton_config metadata)")
        if wanted is not None and kind != wanted:
            raise ConfigError(f"{key}: {uri} is a '{kind}' model; recipe '{recipe.name}' starts {network} "
                              f"from a '{wanted}' model")
        weights, _ = load_network_weights(f"models:/{name}/{version}")
        _check_fits(key, uri, weights, source or network, fresh[network])
        cfg.model.init[network] = pinned_uri
        pinned[network] = pinned_uri
    return pinned


def _check_fits(key: str, uri: str, weights: Mapping[str, dict], source: str, network: nn.Module) -> None:
    if source not in weights:
        raise ConfigError(f"{key}: {uri} holds no network {source!r}; it holds {', '.join(sorted(weights))} "
                          f"(choose one with {uri.partition('#')[0]}#NETWORK)")
    state, expected = weights[source], network.state_dict()
    missing = sorted(set(expected) - set(state))
    extra = sorted(set(state) - set(expected))
    shapes = sorted(f"{k}: stage {tuple(state[k].shape)} vs network {tuple(expected[k].shape)}"
                    for k in set(state) & set(expected) if tuple(state[k].shape) != tuple(expected[k].shape))
    if missing or extra or shapes:
        parts = [f"{what} ({len(items)}): {items[:20]}{' ...' if len(items) > 20 else ''}"
                 for what, items in (("missing keys", missing), ("unexpected keys", extra), ("shape mismatches", shapes))
                 if items]
        raise ConfigError(f"{key}: network {source!r} of {uri} does not fit this recipe's network: " + "; ".join(parts))


def load_initial_weights(nets: Mapping[str, nn.Module], init: Mapping[str, str]) -> None:
    """Copy each ``model.init`` network's registered weights into the fresh network of that name."""
    from orchestrator.registry.models import load_network_weights, split_network

    cache: dict[str, dict] = {}
    for network, uri in init.items():
        base, source = split_network(uri)
        if base not in cache:
            cache[base] = load_network_weights(base)[0]
        weights = cache[base]
        source = source or network
        if source not in weights:
            raise ValueError(f"model.init.{network}: {uri} holds no network {source!r} "
                             f"(it holds {', '.join(sorted(weights))})")
        nets[network].load_state_dict(weights[source], strict=True)
