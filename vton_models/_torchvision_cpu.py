"""Let the CUDA build of torchvision import on a CPU-only torch.

PyPI only ships CUDA wheels of torchvision. With a CPU torch, torchvision's compiled ops library
cannot load, and its Python fallbacks then fail at import time registering fake kernels for
``torchvision::nms`` / ``torchvision::qnms`` because those operator schemas were never declared
("operator torchvision::nms does not exist"). Declaring the two schemas first is enough for
everything this project uses (models, transforms, lpips, pytorch-fid); ``ops.nms`` and the
``torchvision.io`` codecs stay unavailable (images are decoded with OpenCV).

On a CUDA torch the compiled library loads and declares the schemas itself, so this is inert.
"""

from __future__ import annotations

import sys

import torch

_SCHEMAS = {
    "nms": "nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
    "qnms": "qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
}
# Kept alive for the life of the process: dropping a Library object removes its definitions.
_library: torch.library.Library | None = None


def _schema_exists(op: str) -> bool:
    try:
        torch._C._get_schema(f"torchvision::{op}", "")
        return True
    except RuntimeError:
        return False


def install() -> bool:
    """Declare the missing schemas if (and only if) they are needed; returns whether it did."""
    global _library
    if torch.version.cuda is not None or _library is not None:
        return False
    if "torchvision" in sys.modules:
        # Too late to help, and torchvision imported fine: nothing to fix.
        return False
    missing = [op for op in _SCHEMAS if not _schema_exists(op)]
    if not missing:
        return False
    _library = torch.library.Library("torchvision", "FRAGMENT")  # noqa: TOR901 - keep-alive above
    for op in missing:
        _library.define(_SCHEMAS[op])
    return True
