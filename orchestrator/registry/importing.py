"""Register released VITON-HD weights exactly as if vton had trained them.

Why through ``MlflowTracker.log_generator`` and the stage's own config: a registered model carries
its run config (``vton_config`` metadata), which is what evaluation, try-on and a later stage
(``model.gmm: models:/vton-viton_hd-gmm@champion``) read to rebuild the recipe. An import without
it could be stored but never used. The config is ``configs/viton_hd/<stage>.yaml``: the official
resolution and options the released networks were trained with.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Mapping, Sequence

from torch import nn

CONFIG_DIR = Path(__file__).resolve().parents[2] / "configs" / "viton_hd"
IMPORT_EXPERIMENT = "vton-viton_hd-import"


def register_imported(nets: Mapping[str, nn.Module], sources: Mapping[str, str | Path], name_prefix: str = "vton-viton_hd",
                      overrides: Sequence[str] = ()) -> dict[str, str]:
    """Register each stage's network as ``<prefix>-<stage>`` and point ``@champion`` at it; returns
    ``{stage: models:/NAME/VERSION}``."""
    from mlflow import MlflowClient

    from orchestrator.config import load_config
    from orchestrator.registry.tracking import MlflowTracker

    registered = {}
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for stage, net in nets.items():
        name = f"{name_prefix}-{stage}"
        cfg = load_config(CONFIG_DIR / f"{stage}.yaml", [
            f"name=import-{name}-{stamp}", f"tracking.experiment={IMPORT_EXPERIMENT}", f"tracking.model_name={name}",
            "tracking.system_metrics=false", *overrides])
        tracker = MlflowTracker(cfg, None)
        try:
            version = tracker.log_generator(net, cfg, {"imported_from": str(sources[stage]),
                                                       "source": "VITON-HD official release"})
        finally:
            tracker.close()
        assert version is not None, "tracking.register_model is off in the import config"
        MlflowClient().set_registered_model_alias(name, "champion", version)
        registered[stage] = f"models:/{name}/{version}"
    return registered
