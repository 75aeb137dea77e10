"""Registered models: from a ``models:/`` URI to the networks and the run config they were trained with.

A registered model carries its resolved run config as ``vton_config`` metadata
(``orchestrator.registry.tracking``), so everything that loads one (evaluation, try-on, a later stage
consuming it or starting from it) rebuilds exactly the recipe, resolution and representation it was
trained with. The model itself is the stage's generator (or an ``nn.ModuleDict`` of its generators);
``stage_weights.pt`` beside it holds every network's state dict, discriminators and EMA copies included.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from orchestrator.registry.tracking import STAGE_WEIGHTS


class ModelError(ValueError):
    """A model URI that does not name a usable registered model; the message names the URI."""


@dataclass
class LoadedModel:
    """A registered stage's generators (what ``Recipe.generate`` runs, by network name) plus the run
    config that says how to feed them."""

    networks: dict[str, nn.Module]
    config: Any  # orchestrator.config.Config
    uri: str
    name: str | None = None
    version: str | None = None

    @property
    def generator(self) -> nn.Module:
        """The stage's first generator (the only one for every family with one)."""
        return next(iter(self.networks.values()))


def split_network(uri: str) -> tuple[str, str | None]:
    """``models:/NAME@ALIAS#NETWORK`` -> (``models:/NAME@ALIAS``, ``NETWORK``); no fragment -> None."""
    base, sep, network = uri.partition("#")
    return base, (network if sep else None)


def resolve_version(uri: str) -> tuple[str, str]:
    """``models:/NAME@ALIAS`` or ``models:/NAME/VERSION`` -> (name, version)."""
    from mlflow import MlflowClient

    if not uri.startswith("models:/"):
        raise ModelError(f"--model {uri!r}: expected models:/NAME@ALIAS or models:/NAME/VERSION")
    body = uri[len("models:/"):]
    try:
        if "@" in body:
            name, alias = body.split("@", 1)
            return name, str(MlflowClient().get_model_version_by_alias(name, alias).version)
        name, version = body.rsplit("/", 1)
        MlflowClient().get_model_version(name, version)
        return name, version
    except Exception as exc:  # noqa: BLE001 - MlflowException, ValueError: all mean "no such model"
        raise ModelError(f"--model {uri!r}: not found in the MLflow registry "
                         f"({type(exc).__name__}: {str(exc).splitlines()[0][:200]})") from None


def _config(uri: str, meta: dict):
    from orchestrator.config import config_from_dict

    if "vton_config" not in meta:
        raise ModelError(f"--model {uri!r}: the model has no 'vton_config' metadata; it was not logged by "
                         "vton's tracking (orchestrator.registry.tracking.MlflowTracker.log_stage)")
    return config_from_dict(meta["vton_config"])


def _download(uri: str, into: Path) -> Path:
    import mlflow.artifacts

    return Path(mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=str(into)))


def _stage_weights(local: Path) -> dict | None:
    path = local / "extra_files" / STAGE_WEIGHTS
    return torch.load(path, map_location="cpu", weights_only=True) if path.is_file() else None


def load_registered(uri: str) -> LoadedModel:
    """The stage's generators and run config.

    The pickled modules are what was trained; when they cannot be unpickled any more (a network
    class moved or changed since), the generators are rebuilt from the run config and their plain
    state dicts (``stage_weights.pt``), which is why every stage stores them.
    """
    import mlflow.pytorch
    from mlflow.models import get_model_info

    from orchestrator.recipes import build_recipe_from_config

    name, version = resolve_version(uri)
    meta = get_model_info(uri).metadata or {}
    cfg = _config(uri, meta)
    recipe = build_recipe_from_config(cfg)
    with tempfile.TemporaryDirectory(prefix="vton-model-") as tmp:
        local = _download(uri, Path(tmp))
        try:
            model = mlflow.pytorch.load_model(str(local), map_location="cpu")
        except (ModuleNotFoundError, AttributeError, ImportError) as exc:
            networks = _rebuild_generators(uri, recipe, _stage_weights(local), exc)
        else:
            if isinstance(model, nn.ModuleDict):
                networks = dict(model.items())
            else:
                networks = {recipe.generator_names()[0]: model}
    return LoadedModel({n: m.eval() for n, m in networks.items()}, cfg, uri, name, version)


def _rebuild_generators(uri: str, recipe, weights: dict | None, cause: Exception) -> dict[str, nn.Module]:
    if weights is None:
        raise ModelError(f"--model {uri!r}: its pickled network cannot be loaded by this version of vton-train "
                         f"({type(cause).__name__}: {cause}) and it holds no {STAGE_WEIGHTS} to rebuild it from; "
                         "load it with the vton-train version that registered it") from None
    fresh = recipe.build_networks()
    out = {}
    for name in weights["generators"]:
        state = weights["ema"].get(name) or weights["networks"][name]
        fresh[name].load_state_dict(state)
        out[name] = fresh[name]
    return out


def load_network_weights(uri: str) -> tuple[dict[str, dict[str, torch.Tensor]], Any]:
    """``({network: state dict, "ema/<network>": state dict}, run config)`` of a registered stage.

    Stages registered before ``stage_weights.pt`` existed hold only their generator: it is offered
    under the stage's generator name."""
    import mlflow.pytorch
    from mlflow.models import get_model_info

    from orchestrator.recipes import build_recipe_from_config

    meta = get_model_info(uri).metadata or {}
    cfg = _config(uri, meta)
    with tempfile.TemporaryDirectory(prefix="vton-model-") as tmp:
        local = _download(uri, Path(tmp))
        weights = _stage_weights(local)
        if weights is None:
            model = mlflow.pytorch.load_model(str(local), map_location="cpu")
            return {build_recipe_from_config(cfg).generator_names()[0]: model.state_dict()}, cfg
    out = dict(weights["networks"])
    out.update({f"ema/{n}": sd for n, sd in weights["ema"].items()})
    return out, cfg
