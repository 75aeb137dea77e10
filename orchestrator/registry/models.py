"""Registered models: from a ``models:/`` URI to the networks and the run config they were trained with.

A registered model carries its resolved run config as ``vton_config`` metadata
(``orchestrator.registry.tracking``), so everything that loads one (evaluation, try-on, a later stage
consuming it) rebuilds exactly the recipe, resolution and representation it was trained with.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from torch import nn


class ModelError(ValueError):
    """A model URI that does not name a usable registered model; the message names the URI."""


@dataclass
class LoadedModel:
    """A registered generator plus what is needed to feed it."""

    generator: nn.Module
    config: Any  # orchestrator.config.Config
    uri: str
    name: str | None = None
    version: str | None = None

    @property
    def generator_name(self) -> str:
        from orchestrator.recipes import build_recipe_from_config

        recipe = build_recipe_from_config(self.config)
        return next(s.name for s in recipe.networks if s.role == "generator")


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


def load_registered(uri: str) -> LoadedModel:
    """Load G and rebuild its run config from the model metadata written by ``log_generator``."""
    import mlflow.pytorch
    from mlflow.models import get_model_info

    from orchestrator.config import config_from_dict

    name, version = resolve_version(uri)
    info = get_model_info(uri)
    meta = info.metadata or {}
    if "vton_config" not in meta:
        raise ModelError(f"--model {uri!r}: the model has no 'vton_config' metadata; it was not logged by "
                        "vton's tracking (orchestrator.tracking.MlflowTracker.log_generator)")
    cfg = config_from_dict(meta["vton_config"])
    generator = mlflow.pytorch.load_model(uri, map_location="cpu").eval()
    return LoadedModel(generator, cfg, uri, name, version)
