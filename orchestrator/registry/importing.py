"""Register a family's released weights exactly as if vton had trained them.

Why through ``MlflowTracker.log_generator`` and the stage's own config: a registered model carries
its run config (``vton_config`` metadata), which is what evaluation, try-on and a later stage
(``model.gmm: models:/vton-viton_hd-gmm@champion``) read to rebuild the recipe. An import without
it could be stored but never used. The config is ``configs/<family>/<stage>.yaml``: the official
resolution and options the released networks were trained with.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Mapping, Sequence

from torch import nn

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


def stage_config(family: str, stage: str, overrides: Sequence[str] = (), name: str | None = None):
    """The run config an imported stage is registered with: ``configs/<family>/<stage>.yaml`` (the
    options the paper released its weights with) plus ``overrides``: ``KEY=VALUE`` for every stage,
    ``STAGE:KEY=VALUE`` for one (weights trained with other options, e.g. the official code run at
    512x384: ``data.image_size=512x384``)."""
    from orchestrator.config import load_config
    from vton_models.registry import importers

    importer = importers()[family].importer
    overrides = [*getattr(importer, "IMPORT_OVERRIDES", ()), *overrides]  # the release's own settings first
    own = [o.partition(":")[2] for o in overrides if ":" in o.partition("=")[0] and o.partition(":")[0] == stage]
    common = [o for o in overrides if ":" not in o.partition("=")[0]]
    name = name or f"vton-{family}-{stage}"
    return load_config(CONFIGS / family / f"{stage}.yaml", [
        f"name=import-{name}-{time.strftime('%Y%m%d-%H%M%S')}", f"tracking.experiment=vton-{family}-import",
        f"tracking.model_name={name}", "tracking.system_metrics=false",
        "data.manifest=", "data.val_manifest=",  # weights, not a dataset
        *common, *own])


def load_released(family: str, paths: Mapping[str, str | Path], overrides: Sequence[str] = ()) -> dict[str, nn.Module]:
    """Each stage's released checkpoint loaded into the network its import config builds (checked key
    by key and shape by shape by the family's importer)."""
    from orchestrator.recipes import build_recipe_from_config
    from vton_models.registry import importers

    importer = importers()[family].importer
    unknown = sorted(set(paths) - set(importer.STAGE_FILES))
    if unknown:
        raise ValueError(f"unknown {family} stage(s) {unknown}; allowed: {list(importer.STAGE_FILES)}")
    stages = {o.partition(":")[0] for o in overrides if ":" in o.partition("=")[0]}
    if stages - set(importer.STAGE_FILES):
        raise ValueError(f"--set {sorted(stages - set(importer.STAGE_FILES))[0]}:...: no such stage "
                         f"(stages: {', '.join(importer.STAGE_FILES)})")
    nets = {}
    for stage, path in paths.items():
        recipe = build_recipe_from_config(stage_config(family, stage, overrides))
        nets[stage] = importer.load_official(stage, path, recipe.build_networks()[recipe.generator_names()[0]])
    return nets


def register_imported(family: str, nets: Mapping[str, nn.Module], sources: Mapping[str, str | Path],
                      name_prefix: str | None = None, overrides: Sequence[str] = ()) -> dict[str, str]:
    """Register each stage's network as ``<prefix>-<stage>`` and point ``@champion`` at it; returns
    ``{stage: models:/NAME/VERSION}``."""
    from mlflow import MlflowClient

    from orchestrator.recipes import build_recipe_from_config
    from orchestrator.registry.tracking import MlflowTracker
    from vton_models.registry import importers

    importer = importers()[family].importer
    name_prefix = name_prefix or f"vton-{family}"
    registered: dict[str, str] = {}
    produced: dict[str, str] = {}  # recipe -> models:/NAME/VERSION registered by this import
    for stage in [s for s in importer.STAGE_FILES if s in nets]:
        net, name = nets[stage], f"{name_prefix}-{stage}"
        cfg = stage_config(family, stage, overrides, name)
        recipe = build_recipe_from_config(cfg)
        for key in recipe.required_stages():  # e.g. CP-VTON's TOM renders on the GMM imported with it
            if not cfg.model.options.get(key) and recipe.consumes[key] in produced:
                cfg = stage_config(family, stage, [*overrides, f"{stage}:model.{key}={produced[recipe.consumes[key]]}"],
                                   name)
        generator = recipe.generator_names()[0]
        tracker = MlflowTracker(cfg, None)
        try:
            version = tracker.log_generator(net, cfg, {"imported_from": str(sources[stage]), "source": importer.SOURCE},
                                            name=generator)
        finally:
            tracker.close()
        assert version is not None, "tracking.register_model is off in the import config"
        MlflowClient().set_registered_model_alias(name, "champion", version)
        registered[stage] = produced[cfg.model.recipe] = f"models:/{name}/{version}"
    return registered
