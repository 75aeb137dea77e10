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


def register_imported(family: str, nets: Mapping[str, nn.Module], sources: Mapping[str, str | Path],
                      name_prefix: str | None = None, overrides: Sequence[str] = ()) -> dict[str, str]:
    """Register each stage's network as ``<prefix>-<stage>`` and point ``@champion`` at it; returns
    ``{stage: models:/NAME/VERSION}``."""
    from mlflow import MlflowClient

    from orchestrator.config import load_config
    from orchestrator.recipes import build_recipe_from_config
    from orchestrator.registry.tracking import MlflowTracker
    from vton_models.registry import importers

    importer = importers()[family].importer
    name_prefix = name_prefix or f"vton-{family}"
    registered = {}
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for stage, net in nets.items():
        name = f"{name_prefix}-{stage}"
        cfg = load_config(CONFIGS / family / f"{stage}.yaml", [
            f"name=import-{name}-{stamp}", f"tracking.experiment=vton-{family}-import", f"tracking.model_name={name}",
            "tracking.system_metrics=false", "data.manifest=", "data.val_manifest=",  # weights, not a dataset
            *overrides])
        generator = build_recipe_from_config(cfg).generator_names()[0]
        tracker = MlflowTracker(cfg, None)
        try:
            version = tracker.log_generator(net, cfg, {"imported_from": str(sources[stage]), "source": importer.SOURCE},
                                            name=generator)
        finally:
            tracker.close()
        assert version is not None, "tracking.register_model is off in the import config"
        MlflowClient().set_registered_model_alias(name, "champion", version)
        registered[stage] = f"models:/{name}/{version}"
    return registered
