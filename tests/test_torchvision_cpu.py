"""torchvision's CUDA wheel on CPU torch: importable once `vton_models` is imported, inert on CUDA."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap


def _python(code: str, hook: bool = True) -> subprocess.CompletedProcess:
    env = {**os.environ, "VTON_TORCHVISION_HOOK": "1" if hook else "0"}
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=180,
                          env=env)


def test_lpips_and_pytorch_fid_import_after_vton_models():
    out = _python("""
        import vton_models
        import lpips, pytorch_fid.inception, torchvision
        from torchvision.models import vgg19
        net = vgg19(weights=None)
        print("ok", type(net).__name__)
    """)
    assert out.returncode == 0, out.stderr
    assert "ok VGG" in out.stdout


def test_the_fix_is_needed_on_cpu_torch():
    out = _python("""
        import torch
        assert torch.version.cuda is None, "this check is only meaningful on CPU torch"
        try:
            import torchvision
        except Exception as exc:
            print("fails:", type(exc).__name__, exc)
        else:
            print("imports without the fix")
    """, hook=False)
    assert out.returncode == 0, out.stderr
    # If a future torchvision wheel imports on CPU by itself, the fix is still harmless (it checks).
    assert "fails:" in out.stdout or "imports without the fix" in out.stdout


def test_inert_on_cuda_torch():
    out = _python("""
        import torch
        torch.version.cuda = "12.4"   # pretend: the fix must not touch a CUDA build
        from vton_models import _torchvision_cpu
        print("installed:", _torchvision_cpu.install(), _torchvision_cpu._library)
    """)
    assert out.returncode == 0, out.stderr
    assert "installed: False None" in out.stdout


def test_installed_tools_import_torchvision_without_our_packages():
    """`python -m pytorch_fid` raised "operator torchvision::nms does not exist" unless vton_models
    was imported first; the start-up hook `make setup` installs makes every tool work, and costs
    nothing at start-up (no torch import until torchvision is imported)."""
    for argv in (["-m", "pytorch_fid", "--help"], ["-c", "import lpips, torchvision; print('ok')"]):
        out = subprocess.run([sys.executable, *argv], capture_output=True, text=True, timeout=180)
        assert out.returncode == 0 and "Traceback" not in out.stderr, out.stderr
    out = _python("import sys; print('torch' in sys.modules, any(type(f).__name__ == '_BeforeTorchvision' "
                  "for f in sys.meta_path))")
    assert out.stdout.split() == ["False", "True"], out.stdout + out.stderr

