"""Where pretrained networks come from: one table, one cache (``$TORCH_HOME/hub/checkpoints``).

Every pretrained file the project uses is loaded by its library's own loader (torchvision,
pytorch-fid; lpips goes through torchvision), and those loaders read the torch hub cache before
touching the network. So a populated ``$TORCH_HOME`` makes every loader work offline, and an empty
one must fail loudly: a perceptual loss or FID on random weights would produce numbers that look
fine and mean nothing. Hence ``require`` raises with the missing path and the command that fixes
it, and nothing here ever falls back to random weights.

``write_random_weights`` exists for tests and offline CI only: it writes files with the real
names and the exact state-dict layouts, so the real loaders accept them, but with random values.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import torch
from torch import nn

PREPARE_COMMAND = "vton weights prepare"


def _vgg19() -> nn.Module:
    import torchvision

    return torchvision.models.vgg19(weights=None)


def _vgg16() -> nn.Module:
    import torchvision

    return torchvision.models.vgg16(weights=None)


def _alexnet() -> nn.Module:
    import torchvision

    return torchvision.models.alexnet(weights=None)


def _fid_inception() -> nn.Module:
    # The same construction as pytorch_fid.inception.fid_inception_v3, minus its weight download.
    from pytorch_fid import inception as fid

    net = fid._inception_v3(num_classes=1008, aux_logits=False, weights=None)
    net.Mixed_5b = fid.FIDInceptionA(192, pool_features=32)
    net.Mixed_5c = fid.FIDInceptionA(256, pool_features=64)
    net.Mixed_5d = fid.FIDInceptionA(288, pool_features=64)
    net.Mixed_6b = fid.FIDInceptionC(768, channels_7x7=128)
    net.Mixed_6c = fid.FIDInceptionC(768, channels_7x7=160)
    net.Mixed_6d = fid.FIDInceptionC(768, channels_7x7=160)
    net.Mixed_6e = fid.FIDInceptionC(768, channels_7x7=192)
    net.Mixed_7b = fid.FIDInceptionE_1(1280)
    net.Mixed_7c = fid.FIDInceptionE_2(2048)
    return net


def _sphereface20a() -> nn.Module:
    from vton_models.networks.sphereface import SphereFace20a

    return SphereFace20a()


SPHEREFACE_INSTRUCTIONS = (
    "no library loader fetches it: download sphere20a_20171020.7z from "
    "https://github.com/clcarwin/sphereface_pytorch/tree/master/model, extract sphere20a_20171020.pth "
    "and copy it to {path}")


def _manual_download(name: str) -> Callable[[], None]:
    def download() -> None:
        raise RuntimeError(PRETRAINED[name].manual.format(path=path_of(name)))
    return download


def _download_vgg19() -> None:
    import torchvision

    torchvision.models.vgg19(weights=torchvision.models.VGG19_Weights.IMAGENET1K_V1)


def _download_vgg16() -> None:
    import torchvision

    torchvision.models.vgg16(weights=torchvision.models.VGG16_Weights.IMAGENET1K_V1)


def _download_alexnet() -> None:
    import torchvision

    torchvision.models.alexnet(weights=torchvision.models.AlexNet_Weights.IMAGENET1K_V1)


def _download_fid_inception() -> None:
    from pytorch_fid.inception import fid_inception_v3

    fid_inception_v3()


@dataclass(frozen=True)
class PretrainedFile:
    """One cached file: its hub file name, origin, who uses it, and how to build/fetch it."""

    name: str
    filename: str
    url: str
    used_by: str
    build: Callable[[], nn.Module]  # the exact architecture, randomly initialised
    download: Callable[[], None]  # the library's own loader, which fills the hub cache
    #: How to place the file by hand when no library loader fetches it ("{path}": where); such a
    #: file is left out of ``prepare()`` without names (it cannot be fetched unattended).
    manual: str = ""


PRETRAINED: dict[str, PretrainedFile] = {
    f.name: f
    for f in (
        PretrainedFile(
            "vgg19", "vgg19-dcbb9e9d.pth", "https://download.pytorch.org/models/vgg19-dcbb9e9d.pth",
            "VGG perceptual loss (torchvision VGG19, ImageNet)", _vgg19, _download_vgg19,
        ),
        PretrainedFile(
            "alexnet", "alexnet-owt-7be5be79.pth",
            "https://download.pytorch.org/models/alexnet-owt-7be5be79.pth",
            "LPIPS (alex backbone)", _alexnet, _download_alexnet,
        ),
        PretrainedFile(
            "vgg16", "vgg16-397923af.pth", "https://download.pytorch.org/models/vgg16-397923af.pth",
            "LPIPS (vgg backbone)", _vgg16, _download_vgg16,
        ),
        PretrainedFile(
            "inception_fid", "pt_inception-2015-12-05-6726825d.pth",
            "https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/pt_inception-2015-12-05-6726825d.pth",
            "FID / KID (pytorch-fid InceptionV3)", _fid_inception, _download_fid_inception,
        ),
        PretrainedFile(
            "sphereface20a", "sphere20a_20171020.pth",
            "https://github.com/clcarwin/sphereface_pytorch/tree/master/model",
            "face-identity loss (SphereFace 20a, seed 004)", _sphereface20a, _manual_download("sphereface20a"),
            SPHEREFACE_INSTRUCTIONS,
        ),
    )
}


class WeightStatus(NamedTuple):
    name: str
    path: Path
    present: bool


class MissingWeightsError(FileNotFoundError):
    """A pretrained file is not in the torch hub cache; the message says where and how to fix it."""


def checkpoints_dir(torch_home: Path | None = None) -> Path:
    """``<TORCH_HOME>/hub/checkpoints``: where torch.hub (and so every loader here) looks.

    Without an argument it follows ``torch.hub.get_dir()``, which reads ``$TORCH_HOME`` at call
    time, so tests can point it at a temporary directory through the environment.
    """
    if torch_home is not None:
        return Path(torch_home) / "hub" / "checkpoints"
    return Path(torch.hub.get_dir()) / "checkpoints"


def _entry(name: str) -> PretrainedFile:
    try:
        return PRETRAINED[name]
    except KeyError:
        raise ValueError(f"unknown pretrained file {name!r}; allowed: {sorted(PRETRAINED)}") from None


def path_of(name: str) -> Path:
    """Where ``name``'s file is expected in the current torch hub cache."""
    return checkpoints_dir() / _entry(name).filename


def status() -> list[WeightStatus]:
    """(name, path, present) for every pretrained file, in table order."""
    return [WeightStatus(name, path_of(name), path_of(name).is_file()) for name in PRETRAINED]


def require(name: str) -> Path:
    """The path of ``name``'s file; raises ``MissingWeightsError`` naming the path if absent."""
    entry = _entry(name)
    path = path_of(name)
    if not path.is_file() and entry.manual:
        raise MissingWeightsError(f"pretrained weights '{name}' ({entry.used_by}) not found: expected {path} "
                                  f"(TORCH_HOME={os.environ.get('TORCH_HOME', '<unset>')}); "
                                  + entry.manual.format(path=path))
    if not path.is_file():
        raise MissingWeightsError(
            f"pretrained weights '{name}' ({entry.used_by}) not found: expected {path} "
            f"(TORCH_HOME={os.environ.get('TORCH_HOME', '<unset>')}). Run `{PREPARE_COMMAND}` on a "
            f"machine with network access, or copy {entry.url} to that path."
        )
    return path


def load_face_identity(name: str = "sphereface20a") -> nn.Module:
    """A frozen face-identity network from its released file (strictly: every key and shape)."""
    path = require(name)
    net = PRETRAINED[name].build()
    net.load_state_dict(torch.load(path, map_location="cpu", weights_only=True), strict=True)
    return net.eval().requires_grad_(False)


def load_vgg19_features() -> nn.Sequential:
    """torchvision's ImageNet VGG19 ``features``, loaded by torchvision's own loader from the cache."""
    import torchvision

    require("vgg19")
    return torchvision.models.vgg19(weights=torchvision.models.VGG19_Weights.IMAGENET1K_V1).features


def prepare(names: Iterable[str] | None = None) -> list[Path]:
    """Fetch missing files through their libraries' loaders (needs network); returns their paths.

    Files already present are left alone, so this is cheap to run on every deploy. Without
    ``names``, files that must be placed by hand (``PretrainedFile.manual``) are left out.
    """
    selected = [n for n, e in PRETRAINED.items() if not e.manual] if names is None else [_entry(n).name for n in names]
    paths = []
    for name in selected:
        entry, path = PRETRAINED[name], path_of(name)
        if not path.is_file():
            try:
                entry.download()
            except Exception as exc:  # network errors come in many types; report them uniformly
                raise RuntimeError(
                    f"could not download '{name}' from {entry.url} into {path}: {exc}. Without "
                    f"network, copy the file to that path by hand."
                ) from exc
            if not path.is_file():
                raise RuntimeError(f"loader for '{name}' finished but {path} does not exist")
        paths.append(path)
    return paths


#: Tensors larger than this repeat one random block (see ``_random_state``).
_TILE = 1 << 22


def _random_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """Random values in the exact state-dict layout of ``model`` (built on the meta device).

    Fan-in-scaled normal weights, zero biases and identity batch-norm statistics keep activations
    finite through deep nets. Tensors above ``_TILE`` elements (the 100M-parameter VGG/AlexNet
    classifier layers, which no test runs) repeat one random block instead of drawing every value:
    drawing them dominated the fixture's run time. The values carry no meaning either way.
    """
    state = {}
    for key, ref in model.state_dict().items():
        if key.endswith("num_batches_tracked"):
            state[key] = torch.zeros(ref.shape, dtype=ref.dtype)
        elif key.endswith("running_var"):
            state[key] = torch.ones(ref.shape, dtype=ref.dtype)
        elif key.endswith("running_mean") or key.endswith("bias"):
            state[key] = torch.zeros(ref.shape, dtype=ref.dtype)
        elif ref.dim() <= 1:  # norm scales
            state[key] = torch.ones(ref.shape, dtype=ref.dtype)
        else:
            std = ref[0].numel() ** -0.5  # 1 / sqrt(fan_in)
            if ref.numel() <= _TILE:
                state[key] = torch.empty(ref.shape, dtype=ref.dtype).normal_(0.0, std)
            else:
                block = torch.empty(_TILE, dtype=ref.dtype).normal_(0.0, std)
                repeats = -(-ref.numel() // _TILE)
                state[key] = block.repeat(repeats)[: ref.numel()].view(ref.shape).clone()
    return state


def write_random_weights(torch_home: Path, names: Iterable[str] | None = None) -> list[Path]:
    """FOR TESTS AND OFFLINE CI ONLY: write random-valued files under ``torch_home``'s hub cache.

    Each file has its real name and the exact architecture's state-dict keys and shapes, so
    ``torchvision.models.vgg19(weights=...)``, lpips and pytorch-fid load it without network or
    hash checks. Models built from these files compute meaningless features; never point a
    training or evaluation run at such a ``TORCH_HOME``.
    """
    selected = list(PRETRAINED) if names is None else [_entry(n).name for n in names]
    target_dir = checkpoints_dir(Path(torch_home))
    target_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for name in selected:
        entry = PRETRAINED[name]
        with torch.device("meta"):
            model = entry.build()
        path = target_dir / entry.filename
        tmp = path.with_name(path.name + ".tmp")
        torch.save(_random_state(model), tmp)
        tmp.replace(path)  # never leave a half-written file under the real name
        paths.append(path)
    return paths
