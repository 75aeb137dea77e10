"""Image folders -> batches of [0, 1] tensors, for scoring images that are already on disk.

Pairs are matched by file name (the convention of every try-on evaluator: ``fake/X.png`` is scored
against ``real/X.png``). Decoding is PIL ``convert("RGB")``, exactly what ``python -m pytorch_fid``
does, so folder numbers agree with it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import numpy as np
import torch
from PIL import Image

from vton_models.metrics.checks import MetricInputError

EXTENSIONS = {".png", ".jpg", ".jpeg", ".bmp", ".webp"}


def list_images(folder: str | Path) -> list[Path]:
    folder = Path(folder)
    if not folder.is_dir():
        raise MetricInputError(f"{folder}: not a folder")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in EXTENSIONS)
    if not files:
        raise MetricInputError(f"{folder}: no images ({', '.join(sorted(EXTENSIONS))})")
    return files


def load_image(path: Path) -> torch.Tensor:
    with Image.open(path) as im:
        arr = np.asarray(im.convert("RGB"), dtype=np.float32) / 255.0
    return torch.from_numpy(arr).permute(2, 0, 1)


def iter_folder_pairs(fake_dir: str | Path, real_dir: str | Path,
                      batch_size: int = 16) -> Iterator[tuple[torch.Tensor, torch.Tensor, list[str]]]:
    """(fake, real, names) batches of same-named images; names must match one to one."""
    fakes, reals = list_images(fake_dir), list_images(real_dir)
    names_f, names_r = [p.name for p in fakes], [p.name for p in reals]
    if names_f != names_r:
        only = sorted(set(names_f) ^ set(names_r))[:5]
        raise MetricInputError(f"{fake_dir} and {real_dir} must hold the same file names; differing: {only}")
    for start in range(0, len(fakes), batch_size):
        f = [load_image(p) for p in fakes[start:start + batch_size]]
        r = [load_image(p) for p in reals[start:start + batch_size]]
        for a, b, name in zip(f, r, names_f[start:]):
            if a.shape != b.shape:
                raise MetricInputError(f"{name}: {tuple(a.shape[1:])} in {fake_dir} but {tuple(b.shape[1:])} in {real_dir}")
        try:
            yield torch.stack(f), torch.stack(r), names_f[start:start + batch_size]
        except RuntimeError:
            raise MetricInputError(f"images in {fake_dir} differ in size; one evaluation uses one resolution") from None
