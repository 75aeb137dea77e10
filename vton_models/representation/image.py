"""Images in network space (``x / 127.5 - 1``, the paper's ``(x/255 - 0.5) / 0.5``) and agnostic painting."""

from __future__ import annotations

import numpy as np

from vton_models.representation.parse import GARMENT_LABELS, garment_mask

AGNOSTIC_GRAY = 128


def cloth_agnostic_rgb(person: np.ndarray, parse: np.ndarray, labels: tuple[int, ...] = GARMENT_LABELS,
                       fill: int = AGNOSTIC_GRAY) -> np.ndarray:
    """(H, W, 3) uint8: the person with the garment region filled gray (paper 000, eq. 10)."""
    if person.shape[:2] != np.shape(parse):
        raise ValueError(f"cloth_agnostic_rgb: person {person.shape[:2]} and parse {np.shape(parse)} differ in size")
    out = person.copy()
    out[garment_mask(parse, labels).astype(bool)] = fill
    return out


def to_network_rgb(img: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """(H, W, 3) uint8 -> (3, H, W) float32 in [-1, 1] (into ``out`` when given)."""
    chw = np.asarray(img).transpose(2, 0, 1)
    if out is None:
        out = np.empty(chw.shape, np.float32)
    np.divide(chw, np.float32(127.5), out=out, casting="unsafe")
    out -= np.float32(1.0)
    return out
