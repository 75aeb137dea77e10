"""Session fixture ``torch_home``: a temporary TORCH_HOME with every pretrained file, random-valued.

The files carry the real names and exact state-dict layouts (``vton_models.weights.
write_random_weights``), so the real loaders (torchvision, lpips, pytorch-fid) run offline in tests.
Writing them takes ~10 s and ~1.4 GB, hence one directory per session, removed at the end.

Test modules that import the fixture (``from plugins.weights import torch_home``) each get their
own fixture definition in pytest's eyes; the module-level ``_shared`` state makes them all share
one directory, written once, and restores ``TORCH_HOME`` when the last user is torn down.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

import vton_models  # noqa: F401  - first, so torchvision imports on CPU-only torch
import math

import torch

from vton_models import weights
from vton_models.weights import write_random_weights

_shared: dict = {"home": None, "users": 0, "previous": None}


@pytest.fixture(scope="session")
def torch_home() -> Iterator[Path]:
    if _shared["home"] is None:
        home = Path(tempfile.mkdtemp(prefix="vton-torch-home-"))
        try:
            write_random_weights(home)
        except BaseException:
            shutil.rmtree(home, ignore_errors=True)
            raise
        _shared.update(home=home, previous=os.environ.get("TORCH_HOME"))
    _shared["users"] += 1
    os.environ["TORCH_HOME"] = str(_shared["home"])
    try:
        yield _shared["home"]
    finally:
        _shared["users"] -= 1
        if _shared["users"] == 0:
            if _shared["previous"] is None:
                os.environ.pop("TORCH_HOME", None)
            else:
                os.environ["TORCH_HOME"] = _shared["previous"]
            shutil.rmtree(_shared["home"], ignore_errors=True)
            _shared.update(home=None, previous=None)


def write_metric_weights(home: Path) -> None:
    """AlexNet as ``torch_home`` writes it; Inception He-scaled (std sqrt(2/fan_in)).

    With fan-in scaling ~100 Inception layers shrink activations to ~1e-4 and every FID is ~1e-8,
    so a comparison with pytorch-fid would pass whatever was computed; He scaling keeps features
    O(1). Still random weights, still test-only.
    """
    write_random_weights(home, ["alexnet"])
    entry = weights.PRETRAINED["inception_fid"]
    with torch.device("meta"):
        model = entry.build()
    torch.manual_seed(0)
    state = weights._random_state(model)  # noqa: SLF001 - same layout, rescaled below
    for key, value in state.items():
        if value.dim() > 1:
            state[key] = value * math.sqrt(2.0)
    torch.save(state, weights.checkpoints_dir(home) / entry.filename)


@pytest.fixture(scope="module")
def metric_torch_home(tmp_path_factory) -> Iterator[Path]:
    """A TORCH_HOME for metric tests (see ``write_metric_weights``), set for one test module."""
    home = tmp_path_factory.mktemp("metric-torch-home")
    write_metric_weights(home)
    previous = os.environ.get("TORCH_HOME")
    os.environ["TORCH_HOME"] = str(home)
    yield home
    if previous is None:
        os.environ.pop("TORCH_HOME", None)
    else:
        os.environ["TORCH_HOME"] = previous
