"""What `mlflow.pyfunc.load_model` needs of a registered stage: an input example, a signature, and
the code that unpickling the networks imports.

MLflow's PyTorch flavour serves ``model(tensor) -> tensor``. A stage whose one generator takes one
tensor (``unet_sa``'s G, a CP-VTON TOM) gets that tensor's first sample, taken from the last
training batch as the generator really received it, as its input example and signature; a stage
whose generators take several inputs is served by ``vton tryon`` instead, and its metadata says so.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

#: Copied into every logged model (``code_paths``): the pickled networks are vton_models classes,
#: and a process that loads the model needs nothing of this project installed.
CODE_PATHS = [str(Path(__file__).resolve().parents[2] / "vton_models")]
REQUIRED_DISTRIBUTIONS = ("torch", "torchvision", "numpy", "pillow")
#: MLflow stores an input example as JSON: one 41x512x384 float tensor would be ~150 MB of it. Past
#: this many values only the signature is logged (its shapes say the same), and the metadata says so.
MAX_EXAMPLE_VALUES = 1 << 18


@dataclass(frozen=True)
class ServingExample:
    inputs: np.ndarray | None  # None: not callable as model(tensor); ``why`` says so
    outputs: np.ndarray | None
    why: str = ""

    @property
    def logged_example(self) -> np.ndarray | None:
        """The input example to store, if it is small enough (see ``MAX_EXAMPLE_VALUES``)."""
        return self.inputs if self.inputs is not None and self.inputs.size <= MAX_EXAMPLE_VALUES else None


def pip_requirements() -> list[str]:
    """The distributions vton_models imports, pinned to what trained the model (torch without
    its local build tag: the CPU and CUDA builds serve the same pickles)."""
    from importlib.metadata import version

    return [f"{name}=={version(name).split('+')[0]}" for name in REQUIRED_DISTRIBUTIONS]


def serving_example(recipe, generators: Mapping[str, nn.Module], inputs: Mapping[str, torch.Tensor] | None
                    ) -> ServingExample:
    """The generator's own input and output for one sample of ``inputs`` (a training batch)."""
    if inputs is None:
        return ServingExample(None, None, "no training batch to take an example from")
    if len(generators) != 1:
        return ServingExample(None, None, f"{len(generators)} generators: served by `vton tryon`, not pyfunc")
    (generator,) = generators.values()
    generator.eval()  # what serving runs (and batch norm cannot train on one sample)
    one = {k: v[:1] if torch.is_tensor(v) and v.dim() > 0 else v for k, v in inputs.items()}
    seen: list = []
    handle = generator.register_forward_pre_hook(lambda _m, args, kwargs: seen.append((args, kwargs)) if not seen
                                                 else None, with_kwargs=True)
    try:
        with torch.no_grad():
            recipe.generate(dict(generators), one)
    finally:
        handle.remove()
    if not seen:
        return ServingExample(None, None, "the generator is not called by generate()")
    args, kwargs = seen[0]
    if kwargs or len(args) != 1 or not torch.is_tensor(args[0]):
        return ServingExample(None, None, "the generator takes several inputs: served by `vton tryon`, not pyfunc")
    with torch.no_grad():
        out = generator(args[0])
    if not torch.is_tensor(out):
        return ServingExample(None, None, "the generator returns several outputs: served by `vton tryon`, not pyfunc")
    return ServingExample(args[0].detach().float().cpu().numpy(), out.detach().float().cpu().numpy())
