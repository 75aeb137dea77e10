"""A small synthetic dataset in Dress Code's on-disk layout (see ``shards.layouts.dresscode``).

The persons are those of ``shards.synthetic`` (sampled skeleton, LIP label map drawn first, RGB
painted from it), so labels, pixels and keypoints agree by construction; what changes is how the
files are written, which is Dress Code's:

    out/
      synthetic.json                   generator arguments and each sample's garment (a data card)
      train_pairs.txt, test_pairs_paired.txt, test_pairs_unpaired.txt
                                       the root lists: "<id>_0.jpg <id>_1.jpg <c>", c = 0 upper_body,
                                       1 lower_body, 2 dresses
      {upper_body,lower_body,dresses}/
        train_pairs.txt, test_pairs_paired.txt, test_pairs_unpaired.txt   "<id>_0.jpg <id>_1.jpg"
        images/<id>_0.jpg              person, RGB JPEG
        images/<id>_1.jpg              the garment of the category on white, RGB JPEG
        label_maps/<id>_4.png          one-channel PNG, 18 ATR labels (``LIP_TO_ATR`` of the drawing)
        keypoints/<id>_2.json          {"keypoints": [[x, y, score, id] x 18]}, COCO-18 in the
                                       512x384 (HxW) frame whatever the image size, undetected
                                       points [-1, -1, 0, -1]
        skeletons/<id>_5.jpg           the COCO-18 skeleton on black, RGB JPEG at the image size

Categories: sample ``i`` goes to ``CATEGORIES[i % 3]``. upper_body: the garment is the upper
garment (``render_cloth``). lower_body: the garment is the trousers, laid flat in their colour
(``render_flat``, cut from the label map). dresses: the upper garment is lengthened to above the
knees with the trousers hidden under it, drawn as LIP "dress" (6) and laid flat by
``render_cloth``. ``densepose`` is not written. Ids are 6 digits, unique across categories; in
each category the first 75% of its ids are train and the rest test, test persons get another
test garment of the category in ``test_pairs_unpaired.txt`` (a derangement, when there are two).

Determinism: sample ``i`` draws from ``SeedSequence([seed, i])`` only (``draw_sample``), and the
encoders are deterministic, so the same arguments give byte-identical files.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import cv2
import numpy as np

from shards.layouts.dresscode import CATEGORIES, KEYPOINT_FRAME
from shards.synthetic import (
    MID_HIP,
    PANTS,
    UPPER,
    _prepare,
    _unpaired,
    checked_arguments,
    draw_parse,
    jpeg_bytes,
    keypoints25,
    png_bytes,
    render_cloth,
    render_person,
    render_pose,
    sample_body,
    split_counts,
    write_marker,
)
from vton_models.representation.parse import ATR_TO_LIP
from vton_models.representation.pose import convert_pose

#: LIP label -> the ATR label (Dress Code's ``label_maps``) written for it; the inverse of
#: ``vton_models.representation.parse.ATR_TO_LIP`` where LIP has a class ATR has. ATR has no
#: glove, coat, socks or neck class: coat (7) is ATR upper-clothes (decoded back as LIP 5),
#: label 10, the neck in VITON-HD's convention the synthetic person follows, is ATR 11 (Dress
#: Code's "head", decoded back as LIP 13 face), glove (3) and socks (8) are background (the side
#: an ATR arm/leg/shoe label needs is unknown). ``LOSSY_LIP`` lists these four.
LIP_TO_ATR: tuple[int, ...] = (
    0,   # 0 background
    1,   # 1 hat
    2,   # 2 hair
    0,   # 3 glove          (lossy)
    3,   # 4 sunglasses
    4,   # 5 upper-clothes
    7,   # 6 dress
    4,   # 7 coat           (lossy: upper-clothes)
    0,   # 8 socks          (lossy)
    6,   # 9 pants
    11,  # 10 neck         (lossy: head -> LIP face)
    17,  # 11 scarf
    5,   # 12 skirt
    11,  # 13 face
    14,  # 14 left arm
    15,  # 15 right arm
    12,  # 16 left leg
    13,  # 17 right leg
    9,   # 18 left shoe
    10,  # 19 right shoe
)
LOSSY_LIP: tuple[int, ...] = tuple(lip for lip, atr in enumerate(LIP_TO_ATR) if ATR_TO_LIP[atr] != lip)
DRESS = 6  # LIP dress
TEST_FRACTION = 0.25
CATEGORY_CODE: dict[str, int] = {c: i for i, c in enumerate(CATEGORIES)}
LISTS: tuple[str, ...] = ("train_pairs.txt", "test_pairs_paired.txt", "test_pairs_unpaired.txt")
FOLDERS: tuple[str, ...] = ("images", "keypoints", "label_maps", "skeletons")


def lip_to_atr(labels: np.ndarray) -> np.ndarray:
    """A LIP label map (0..19) as ATR labels (``LIP_TO_ATR``)."""
    lut = np.zeros(256, np.uint8)
    lut[: len(LIP_TO_ATR)] = LIP_TO_ATR
    return lut[np.asarray(labels, np.uint8)]


def render_flat(mask: np.ndarray, colour: tuple[int, int, int], size: tuple[int, int]) -> np.ndarray:
    """The region ``mask`` of the person laid flat on white: cropped, scaled to fill the frame
    (nearest neighbour, so the outline stays a label outline), in one colour."""
    h, w = size
    img = np.full((h, w, 3), 255, np.uint8)
    ys, xs = np.nonzero(mask)
    if len(ys) == 0:
        return img
    crop = mask[ys.min(): ys.max() + 1, xs.min(): xs.max() + 1].astype(np.uint8)
    k = min(0.9 * w / crop.shape[1], 0.85 * h / crop.shape[0])
    nh, nw = max(1, int(round(crop.shape[0] * k))), max(1, int(round(crop.shape[1] * k)))
    scaled = cv2.resize(crop, (nw, nh), interpolation=cv2.INTER_NEAREST).astype(bool)
    y0, x0 = (h - nh) // 2, (w - nw) // 2
    img[y0: y0 + nh, x0: x0 + nw][scaled] = colour
    return img


def dresscode_keypoints(coco: np.ndarray, size: tuple[int, int]) -> dict:
    """COCO-18 (x, y, c) in pixels of a ``size`` (H, W) image -> Dress Code's JSON document in the
    ``KEYPOINT_FRAME``; the inverse of ``keypoints_from_dresscode``'s scaling (pixel centres)."""
    (h, w), (fh, fw) = size, KEYPOINT_FRAME
    points, candidate = [], 0
    for x, y, c in np.asarray(coco, np.float64):
        if c > 0:
            points.append([round((x + 0.5) * fw / w - 0.5, 3), round((y + 0.5) * fh / h - 0.5, 3),
                           round(float(c), 4), float(candidate)])
            candidate += 1
        else:
            points.append([-1.0, -1.0, 0.0, -1.0])
    return {"keypoints": points}


@dataclasses.dataclass(frozen=True)
class DrawnSample:
    """One synthetic Dress Code sample before encoding (what the files hold, as arrays)."""

    category: str
    person: np.ndarray  # (H, W, 3) RGB
    cloth: np.ndarray  # (H, W, 3) RGB on white
    lip: np.ndarray  # (H, W) LIP labels as drawn (dress relabelled 6 in "dresses")
    atr: np.ndarray  # (H, W) the ATR label map written
    coco: np.ndarray  # (18, 3) COCO-18 keypoints in image pixels
    garment: dict


def draw_sample(index: int, category: str, size: tuple[int, int], seed: int) -> DrawnSample:
    """Sample ``index`` of a set drawn with ``seed`` (depends on nothing else)."""
    if category not in CATEGORIES:
        raise ValueError(f"draw_sample: unknown category {category!r}; allowed: {', '.join(CATEGORIES)}")
    rng = np.random.default_rng(np.random.SeedSequence([seed, index]))
    body = sample_body(rng, size)
    if category == "dresses":
        length = float(rng.uniform(0.12, 0.2))  # hem between the hips and the knees
        body = dataclasses.replace(body, hem_y=float(body.joints[MID_HIP][1]) + length * body.hb, pants_len=0.0,
                                   garment=dataclasses.replace(body.garment, length=length))
    parse = draw_parse(body, size)
    person = render_person(body, parse)
    if category == "lower_body":
        cloth = render_flat(parse == PANTS, body.colours["pants"], size)
        garment = {"kind": "pants", "base_rgb": list(body.colours["pants"]), "pattern": "solid"}
    else:
        cloth, _ = render_cloth(body, size)
        garment = {"kind": "dress" if category == "dresses" else "upper", **body.garment.card()}
    lip = parse.copy()
    if category == "dresses":
        lip[lip == UPPER] = DRESS
    coco = convert_pose(keypoints25(body, size, rng), "body25", "coco18")
    return DrawnSample(category, person, cloth, lip, lip_to_atr(lip), coco, garment)


def write_sample(root: Path, ident: str, drawn: DrawnSample) -> int:
    """Write one sample's files under ``root`` (its category folder); returns the bytes written."""
    size = drawn.person.shape[:2]
    files = {
        f"images/{ident}_0.jpg": jpeg_bytes(drawn.person),
        f"images/{ident}_1.jpg": jpeg_bytes(drawn.cloth),
        f"keypoints/{ident}_2.json": json.dumps(dresscode_keypoints(drawn.coco, size)).encode(),
        f"label_maps/{ident}_4.png": png_bytes(drawn.atr),
        f"skeletons/{ident}_5.jpg": jpeg_bytes(render_pose(convert_pose(drawn.coco, "coco18", "body25"), size)),
    }
    for rel, data in files.items():
        (root / rel).write_bytes(data)
    return sum(len(d) for d in files.values())


def _prepare_dir(out: Path) -> None:
    """``shards.synthetic._prepare`` (refuses a non-empty folder without ``synthetic.json``, else
    clears an earlier synthetic set) plus this layout's own folders and lists."""
    _prepare(out)
    for cat in CATEGORIES:
        shutil.rmtree(out / cat, ignore_errors=True)
    for name in LISTS:
        (out / name).unlink(missing_ok=True)


def synthesize(out: Path, n: int = 64, size: tuple[int, int] = (64, 48), seed: int = 0) -> dict:
    """Write ``n`` synthetic samples of ``size`` (H, W) in Dress Code's layout under ``out``.

    Returns a report like ``shards.synthetic.synthesize``'s: root, counts per split (and per
    category), list files, files and bytes written.
    """
    out = Path(out)
    h, w = checked_arguments(n, size, 999999, "6-digit Dress Code ids")
    _prepare_dir(out)
    splits: dict[str, dict[str, list[str]]] = {"train": {}, "test": {}}
    for ci, cat in enumerate(CATEGORIES):
        ids = [f"{i:06d}" for i in range(ci, n, len(CATEGORIES))]
        n_train, _ = split_counts(len(ids), TEST_FRACTION) if ids else (0, 0)
        splits["train"][cat], splits["test"][cat] = ids[:n_train], ids[n_train:]
    cards, total = [], 0
    rows: dict[str, list[tuple[str, str, str]]] = {name: [] for name in LISTS}  # (cat, person, cloth)
    for cat in CATEGORIES:
        for folder in FOLDERS:
            (out / cat / folder).mkdir(parents=True, exist_ok=True)
        for split in ("train", "test"):
            for ident in splits[split][cat]:
                drawn = draw_sample(int(ident), cat, (h, w), seed)
                total += write_sample(out / cat, ident, drawn)
                cards.append({"id": ident, "category": cat, "split": split, "garment": drawn.garment})
        test = splits["test"][cat]
        rows["train_pairs.txt"] += [(cat, f"{i}_0.jpg", f"{i}_1.jpg") for i in splits["train"][cat]]
        rows["test_pairs_paired.txt"] += [(cat, f"{i}_0.jpg", f"{i}_1.jpg") for i in test]
        others = _unpaired(test, seed)
        rows["test_pairs_unpaired.txt"] += [(cat, f"{i}_0.jpg", f"{c}_1.jpg") for i, c in zip(test, others)]
    for name, lines in rows.items():
        (out / name).write_text("".join(f"{p} {c} {CATEGORY_CODE[cat]}\n" for cat, p, c in lines))
        for cat in CATEGORIES:
            (out / cat / name).write_text("".join(f"{p} {c}\n" for line_cat, p, c in lines if line_cat == cat))
    counts = {split: sum(len(ids) for ids in by_cat.values()) for split, by_cat in splits.items()}
    write_marker(out, "shards.synthetic_dresscode", "dresscode", n=n, size=[h, w], seed=seed,
                 split_test_fraction=TEST_FRACTION, samples=cards)
    return {
        "root": str(out),
        "layout": "dresscode",
        "size": [h, w],
        "seed": seed,
        "counts": counts,
        "category_counts": {cat: {split: len(splits[split][cat]) for split in splits} for cat in CATEGORIES},
        "pairs_files": {name: str(out / name) for name in LISTS},
        "files": n * (len(FOLDERS) + 1) + len(LISTS) * (len(CATEGORIES) + 1) + 1,
        "bytes": total,
    }
