"""Make every tool in this environment import torchvision on CPU torch, not only our own code.

PyPI's torchvision is a CUDA build; on a CPU torch it fails to import ("operator torchvision::nms
does not exist") unless two operator schemas are declared first (``vton_models._torchvision_cpu``).
Our packages do that on import, but ``python -m pytorch_fid`` or a user's notebook that imports
lpips never imports them. ``make setup`` therefore installs ``vton_torchvision_hook.pth`` into the
environment's site-packages; Python runs its one import line at start-up, which only adds a
meta-path finder (no torch import: `vton stack status` must stay instant). The first time anything
imports torchvision, the finder declares the schemas, removes itself, and the import proceeds.

``python -m vton_torchvision_hook install`` writes the .pth (``uninstall`` removes it).
"""

from __future__ import annotations

import importlib.abc
import os
import sys
import sysconfig
from pathlib import Path

PTH_NAME = "vton_torchvision_hook.pth"


class _BeforeTorchvision(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path=None, target=None):
        if fullname == "torchvision":
            remove()
            from vton_models import _torchvision_cpu  # declares the schemas when (and only when) needed

            _torchvision_cpu.install()
        return None  # the regular finders import torchvision itself


def activate() -> None:
    """What the .pth line runs: put the finder first, once (``VTON_TORCHVISION_HOOK=0``: not at all)."""
    if os.environ.get("VTON_TORCHVISION_HOOK") == "0":
        return
    if "torchvision" not in sys.modules and not any(isinstance(f, _BeforeTorchvision) for f in sys.meta_path):
        sys.meta_path.insert(0, _BeforeTorchvision())


def remove() -> None:
    sys.meta_path[:] = [f for f in sys.meta_path if not isinstance(f, _BeforeTorchvision)]


def pth_path() -> Path:
    return Path(sysconfig.get_paths()["purelib"]) / PTH_NAME


def main(argv: list[str]) -> int:
    if argv[:1] == ["install"]:
        pth_path().write_text("import vton_torchvision_hook; vton_torchvision_hook.activate()\n")
        print(f"installed {pth_path()}")
        return 0
    if argv[:1] == ["uninstall"]:
        pth_path().unlink(missing_ok=True)
        print(f"removed {pth_path()}")
        return 0
    print("usage: python -m vton_torchvision_hook install|uninstall", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
