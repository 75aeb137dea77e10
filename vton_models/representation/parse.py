"""Human-parse label maps (LIP, 20 labels): range checks, one-hots, regions and regroupings."""

from __future__ import annotations

import numpy as np

#: The LIP parser's labels (JPPNet / SCHP), what the try-on datasets' parse maps hold.
LIP_LABELS: tuple[str, ...] = (
    "background", "hat", "hair", "glove", "sunglasses", "upper_clothes", "dress", "coat", "socks", "pants",
    "jumpsuits", "scarf", "skirt", "face", "left_arm", "right_arm", "left_leg", "right_leg", "left_shoe", "right_shoe",
)
NUM_LIP_LABELS = len(LIP_LABELS)

#: Seed paper 000 (eq. 9): the garment region is upper-clothes (5) and coat (7) only; arms, neck
#: and dress are kept, so the person's skin and identity stay visible.
GARMENT_LABELS: tuple[int, ...] = (5, 7)


#: DressCode's ``label_maps`` (18 ATR classes, as DressCode's own dataset code names them) -> LIP.
#: Where LIP has no class of its own: the belt is drawn with the pants (it sits on the waist between
#: upper clothes and pants/skirt, and a try-on of either garment replaces it), the bag becomes
#: background (it is not body nor garment), sunglasses and scarf keep their LIP classes (4, 11).
ATR_LABELS: tuple[str, ...] = (
    "background", "hat", "hair", "sunglasses", "upper_clothes", "skirt", "pants", "dress", "belt",
    "left_shoe", "right_shoe", "face", "left_leg", "right_leg", "left_arm", "right_arm", "bag", "scarf",
)
ATR_TO_LIP: tuple[int, ...] = (0, 1, 2, 4, 5, 12, 9, 6, 9, 18, 19, 13, 16, 17, 14, 15, 0, 11)
NUM_ATR_LABELS = len(ATR_LABELS)


def atr_to_lip(labels: np.ndarray) -> np.ndarray:
    """An ATR label map (0..17) as LIP labels (``ATR_TO_LIP``)."""
    lut = np.zeros(256, np.uint8)
    lut[:NUM_ATR_LABELS] = ATR_TO_LIP
    return lut[check_labels(labels, NUM_ATR_LABELS, "atr_to_lip")]


def check_labels(parse: np.ndarray, num_classes: int, what: str) -> np.ndarray:
    labels = np.asarray(parse)
    if labels.ndim != 2:
        raise ValueError(f"{what}: label map must be (H, W), got shape {labels.shape}")
    bad = (labels < 0) | (labels >= num_classes)
    if bad.any():
        values = sorted(int(v) for v in np.unique(labels[bad]))
        raise ValueError(f"{what}: label values {values} out of range 0..{num_classes - 1} "
                         f"({int(bad.sum())} pixels)")
    return labels


def parse_onehot(parse: np.ndarray, num_classes: int = NUM_LIP_LABELS, out: np.ndarray | None = None) -> np.ndarray:
    """(C, H, W) float32 with channel k = 1 exactly where the label is k (scattered by index into
    ``out`` when given: one write per pixel instead of C comparisons)."""
    labels = check_labels(parse, num_classes, "parse_onehot")
    h, w = labels.shape
    if out is None:
        out = np.empty((num_classes, h, w), np.float32)
    out.fill(0.0)
    flat = out.reshape(num_classes, h * w)
    flat[labels.reshape(-1).astype(np.intp), np.arange(h * w)] = 1.0
    return out


def garment_mask(parse: np.ndarray, labels: tuple[int, ...] = GARMENT_LABELS) -> np.ndarray:
    """(H, W) uint8 0/1: the region replaced by gray (paper 000, eq. 4/9)."""
    return np.isin(check_labels(parse, NUM_LIP_LABELS, "garment_mask"), labels).astype(np.uint8)


def agnostic_mask(parse: np.ndarray, labels: tuple[int, ...] = GARMENT_LABELS) -> np.ndarray:
    """(H, W) uint8 0/1: the person pixels a try-on must *keep* (paper 000, eq. 5: P > 0 and not garment).

    Note the opposite convention of the ``agnostic-mask/`` folder of VITON-HD derivatives, which
    marks the region to inpaint; that one is ``garment_mask`` here.
    """
    labels_map = check_labels(parse, NUM_LIP_LABELS, "agnostic_mask")
    return ((labels_map > 0) & ~np.isin(labels_map, labels)).astype(np.uint8)


def label_lut(groups: tuple[tuple[str, tuple[int, ...]], ...], size: int) -> np.ndarray:
    """A lookup table mapping each of ``size`` labels to the index of the group holding it; every
    label must be in exactly one group (a family's regrouping of the parse, e.g. VITON-HD's 13)."""
    table = np.full(size, 255, np.uint8)
    for new, (_, olds) in enumerate(groups):
        table[list(olds)] = new
    assert (table != 255).all(), "grouping does not cover every label"
    return table
