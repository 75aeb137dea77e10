"""Registered models: from a ``models:/`` URI to the networks and the run config they were trained with.

A registered model carries its resolved run config as ``vton_config`` metadata
(``orchestrator.registry.tracking``), so everything that loads one (evaluation, try-on, a later stage
consuming it or starting from it) rebuilds exactly the recipe, resolution and representation it was
trained with. The model itself is the stage's generator (or an ``nn.ModuleDict`` of its generators);
``stage_weights.pt`` beside it holds every network's state dict, discriminators and EMA copies included.
"""

from __future__ import annotations

import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from orchestrator.registry.tracking import STAGE_WEIGHTS
from orchestrator.registry.uris import MODEL_URI_FORMS, is_model_reference


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
    """Any of ``MODEL_URI_FORMS`` -> (registered name, version). A logged model (``models:/m-...``,
    ``runs:/...``) must have been registered: versions carry the config and lineage tags."""
    from mlflow import MlflowClient

    if not is_model_reference(uri):
        raise ModelError(f"--model {uri!r}: expected {MODEL_URI_FORMS}")
    client = MlflowClient()
    try:
        if uri.startswith("runs:/"):
            return _registered_version_of(client, uri, _logged_model_id(uri))
        if not uri.startswith("models:/"):
            return _latest_version(client, uri)
        body = uri[len("models:/"):]
        if body.startswith("m-") and "/" not in body and "@" not in body:
            return _registered_version_of(client, uri, body)
        if "@" in body:
            name, alias = body.split("@", 1)
            return name, str(client.get_model_version_by_alias(name, alias).version)
        if "/" not in body:
            return _latest_version(client, body)
        name, version = body.rsplit("/", 1)
        client.get_model_version(name, version)
        return name, version
    except ModelError:
        raise
    except Exception as exc:  # noqa: BLE001 - MlflowException, ValueError: all mean "no such model"
        raise ModelError(f"--model {uri!r}: not found in the MLflow registry "
                         f"({type(exc).__name__}: {str(exc).splitlines()[0][:200]})") from None


def canonical_uri(uri: str) -> str:
    """``models:/NAME/VERSION`` of any accepted form (a ``#NETWORK`` fragment is kept)."""
    base, network = split_network(uri)
    name, version = resolve_version(base)
    return f"models:/{name}/{version}" + (f"#{network}" if network else "")


def _latest_version(client, name: str) -> tuple[str, str]:
    versions = client.search_model_versions(f"name = '{name}'")
    if not versions:
        raise ModelError(f"--model {name!r}: no registered model of that name (expected {MODEL_URI_FORMS})")
    version = str(max(int(v.version) for v in versions))
    print(f"[vton] model {name}: its latest version, {version} (models:/{name}/{version} or @ALIAS pins one)",
          file=sys.stderr, flush=True)
    return name, version


def _logged_model_id(uri: str) -> str:
    from mlflow.models import get_model_info

    model_id = getattr(get_model_info(uri), "model_id", None)
    if not model_id:
        raise ModelError(f"--model {uri!r}: MLflow names no logged model there")
    return model_id


def _registered_version_of(client, uri: str, model_id: str) -> tuple[str, str]:
    import mlflow

    logged = mlflow.get_logged_model(model_id)
    for version in client.search_model_versions(f"run_id = '{logged.source_run_id}'"):
        # MLflow 3 records the logged model on the version as model_id, or only in its source
        # (models:/m-...), depending on how it was registered.
        if getattr(version, "model_id", None) == model_id or (version.source or "").endswith(model_id):
            return version.name, str(version.version)
    raise ModelError(f"--model {uri!r}: logged model {model_id} is not registered; register it first "
                     f"(mlflow.register_model('models:/{model_id}', NAME)) so it carries its config and lineage")


def _config(uri: str, meta: dict):
    from orchestrator.config import config_from_dict

    if "vton_config" not in meta:
        raise ModelError(f"--model {uri!r}: the model has no 'vton_config' metadata; it was not logged by "
                         "vton's tracking (orchestrator.registry.tracking.MlflowTracker.log_stage)")
    return config_from_dict(meta["vton_config"])


#: What loading a stage's modules needs of its logged model: the MLmodel and the pickled modules.
#: Not ``code/`` (vton_models for pyfunc users elsewhere: this process has imported its own, which
#: is what the pickle resolves to) nor the environment files and example: ~75 files, each a request
#: to the tracking server, fewer per stage loaded (a try-on of a five-stage chain loads five).
_MODULE_FILES = ("MLmodel", "data")
_WEIGHTS_FILE = f"extra_files/{STAGE_WEIGHTS}"


def _download(uri: str, into: Path, paths: tuple[str, ...]) -> Path:
    """``paths`` of the logged model ``uri`` into ``into``, laid out as in the model."""
    import mlflow.artifacts

    for path in paths:
        mlflow.artifacts.download_artifacts(artifact_uri=f"{uri}/{path}", dst_path=str(into))
    return into


def _stage_weights(uri: str, local: Path) -> dict | None:
    """The stage's ``stage_weights.pt``; None for a stage registered before it existed."""
    from mlflow.artifacts import list_artifacts

    if not list_artifacts(artifact_uri=f"{uri}/extra_files"):
        return None
    path = _download(uri, local, (_WEIGHTS_FILE,)) / _WEIGHTS_FILE
    return torch.load(path, map_location="cpu", weights_only=True)


def load_registered(uri: str) -> LoadedModel:
    """The stage's generators and run config.

    The pickled modules are what was trained; when they cannot be unpickled any more (a network
    class moved or changed since), the generators are rebuilt from the run config and their plain
    state dicts (``stage_weights.pt``), which is why every stage stores them.
    """
    import mlflow.pytorch
    from mlflow.models import get_model_info

    from orchestrator.recipes import build_recipe_from_config

    given = uri
    name, version = resolve_version(uri)
    uri = f"models:/{name}/{version}"  # what the user gave may move (an alias) or not be a models:/ URI
    meta = get_model_info(uri).metadata or {}
    cfg = _config(uri, meta)
    recipe = build_recipe_from_config(cfg)
    with tempfile.TemporaryDirectory(prefix="vton-model-") as tmp:
        local = _download(uri, Path(tmp), _MODULE_FILES)
        try:
            model = mlflow.pytorch.load_model(str(local), map_location="cpu")
        except (ModuleNotFoundError, AttributeError, ImportError) as exc:
            networks = _rebuild_generators(uri, recipe, _stage_weights(uri, local), exc)
        else:
            if isinstance(model, nn.ModuleDict):
                networks = dict(model.items())
            else:
                networks = {recipe.generator_names()[0]: model}
    return LoadedModel({n: m.eval() for n, m in networks.items()}, cfg, given, name, version)


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

    uri = canonical_uri(uri)  # artifact paths below it ({uri}/extra_files/...) resolve under a pinned version
    meta = get_model_info(uri).metadata or {}
    cfg = _config(uri, meta)
    with tempfile.TemporaryDirectory(prefix="vton-model-") as tmp:
        weights = _stage_weights(uri, Path(tmp))
        if weights is None:
            model = mlflow.pytorch.load_model(str(_download(uri, Path(tmp), _MODULE_FILES)), map_location="cpu")
            return {build_recipe_from_config(cfg).generator_names()[0]: model.state_dict()}, cfg
    out = dict(weights["networks"])
    out.update({f"ema/{n}": sd for n, sd in weights["ema"].items()})
    return out, cfg
