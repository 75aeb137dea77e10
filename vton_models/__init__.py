"""Model zoo for virtual try-on: networks, losses, metrics and recipes, in plain PyTorch.

Importing this package first makes torchvision (and lpips / pytorch-fid, which import it) usable
on CPU-only torch; every module of the project that touches torchvision lives under it.
"""

from vton_models import _torchvision_cpu

_torchvision_cpu.install()
