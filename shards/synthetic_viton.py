"""A small synthetic try-on dataset in the VITON / CP-VTON on-disk layout (``shards.layouts.viton``).

The persons are exactly those of ``shards.synthetic`` (VITON-HD layout) with the same ``n``,
``size`` and ``seed``: sample ``i`` draws from ``SeedSequence([seed, i])`` in the same order (body,
then keypoint confidences), so person, cloth, mask and parse pixels are identical and the COCO-18
keypoints are VITON-HD's BODY_25 ones converted by ``shards.synthetic.coco18_json`` (``convert_pose``,
rounded to 4 decimals). The split and the unpaired test list are the same too, so a test can hold
one layout against the other.

Layout written (CP-VTON's ``cp_dataset.py`` conventions: ids of 6 digits, person ``<id>_0`` wears
cloth ``<id>_1``)::

    out/
      train_pairs.txt                 "<id>_0.jpg <id>_1.jpg": paired
      test_pairs.txt                  "<id>_0.jpg <other>_1.jpg": each test person with another test
                                      person's cloth (a derangement), as the released list is unpaired
      synthetic.json                  generator arguments and each sample's garment
      {train,test}/
        image/000000_0.jpg            person, RGB JPEG
        cloth/000000_1.jpg            in-shop garment on white, RGB JPEG
        cloth-mask/000000_1.jpg       garment mask, grayscale JPEG 0/255
        image-parse/000000_0.png      LIP labels, palette PNG
        pose/000000_0_keypoints.json  {"people": [{"pose_keypoints": [x, y, c] * 18}]} (COCO-18)
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from shards.synthetic import (
    _unpaired,
    checked_arguments,
    coco18_json,
    draw_sample,
    jpeg_bytes,
    palette_png,
    prepare_output,
    split_counts,
    write_marker,
)

LAYOUT = "viton"
MODALITY_DIRS: tuple[str, ...] = ("image", "cloth", "cloth-mask", "image-parse", "pose")
TEST_FRACTION = 0.25


def write_sample(root: Path, i: int, size: tuple[int, int], seed: int) -> dict:
    """Draw sample ``i`` (the same person as ``shards.synthetic``'s) and write it under ``root``."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, i]))
    drawn = draw_sample(rng, size)
    name = f"{i:06d}"
    files = {
        f"image/{name}_0.jpg": jpeg_bytes(drawn.person),
        f"cloth/{name}_1.jpg": jpeg_bytes(drawn.cloth),
        f"cloth-mask/{name}_1.jpg": jpeg_bytes(drawn.cloth_mask * 255),
        f"image-parse/{name}_0.png": palette_png(drawn.parse),
        f"pose/{name}_0_keypoints.json": coco18_json(drawn.keypoints),
    }
    for rel, data in files.items():
        (root / rel).write_bytes(data)
    return {"id": name, "garment": drawn.body.garment.card(), "bytes": sum(len(d) for d in files.values())}


def synthesize(out: Path, n: int = 64, size: tuple[int, int] = (64, 48), seed: int = 0) -> dict:
    """Write ``n`` synthetic samples of ``size`` (H, W) in the CP-VTON layout under ``out``.

    The first ``n - n_test`` ids (``n_test`` = a quarter, at least one when ``n >= 2``) go to
    ``train``, the rest to ``test``. Returns a report: root, counts per split, pairs files, bytes.
    """
    out = Path(out)
    h, w = checked_arguments(n, size, 999999, "6-digit CP-VTON ids")
    prepare_output(out, ("train", "test"), ("train_pairs.txt", "test_pairs.txt"))
    n_train, n_test = split_counts(n, TEST_FRACTION)
    splits = {"train": range(n_train), "test": range(n_train, n)}
    cards, total = [], 0
    for split, ids in splits.items():
        for d in MODALITY_DIRS:
            (out / split / d).mkdir(parents=True, exist_ok=True)
        for i in ids:
            card = write_sample(out / split, i, (h, w), seed)
            total += card.pop("bytes")
            cards.append({**card, "split": split})
    test_ids = [f"{i:06d}" for i in splits["test"]]
    pairs = {
        "train_pairs.txt": [(f"{i:06d}", f"{i:06d}") for i in splits["train"]],
        "test_pairs.txt": list(zip(test_ids, _unpaired(test_ids, seed))),
    }
    for fname, rows in pairs.items():
        (out / fname).write_text("".join(f"{p}_0.jpg {c}_1.jpg\n" for p, c in rows))
    write_marker(out, "shards.synthetic_viton", LAYOUT, n=n, size=[h, w], seed=seed, test_fraction=TEST_FRACTION,
                 samples=cards)
    return {
        "root": str(out),
        "layout": LAYOUT,
        "size": [h, w],
        "seed": seed,
        "counts": {"train": n_train, "test": n_test},
        "pairs_files": {name: str(out / name) for name in pairs},
        "files": n * len(MODALITY_DIRS) + len(pairs) + 1,
        "bytes": total,
    }
