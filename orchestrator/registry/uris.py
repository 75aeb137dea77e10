"""The model references every option accepts, recognised without importing torch or MLflow.

MLflow users pass models in several forms; config validation and `vton eval` (which also takes a
checkpoint URL or path) must tell a model reference from the rest before anything heavy loads.
``orchestrator.registry.models.resolve_version`` turns each into a registered name and version.
"""

from __future__ import annotations

import re
from pathlib import Path

#: What every model option accepts (``--model``, ``model.<stage>``, ``model.init.<network>``).
MODEL_URI_FORMS = ("models:/NAME@ALIAS, models:/NAME/VERSION, models:/m-<logged model id>, "
                   "runs:/<run id>/<artifact path>, or a registered model's bare NAME (its latest version)")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def is_model_reference(uri: str) -> bool:
    """Whether ``uri`` names a model (any of ``MODEL_URI_FORMS``) rather than a checkpoint URL or path."""
    if uri.startswith(("models:/", "runs:/")):
        return True
    return "://" not in uri and bool(_NAME.match(uri)) and not Path(uri).exists()
