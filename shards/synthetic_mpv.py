"""A small synthetic multi-pose dataset in MPV's on-disk layout (readable as ``mpv`` and ``mpv_triplets``).

MPV (Dong et al., ICCV'19) photographs one model wearing one product in several poses; its
triplets file pairs two photos of the same product with the product's in-shop photo. The
synthetic version keeps exactly that structure: each *identity* is one body drawn by
``shards.synthetic.sample_body`` (build, garment, colours, hair, trouser length) and photographed
in 2 or 3 poses (``shards.synthetic.repose`` draws only arm angles, leg spread and a small shift
again), so persons A and B of a triplet wear the same garment, whose flat photo is the cloth.
Labels and pixels agree by construction, as in the VITON-HD synthetic set.

Layout written (the names of the MPV release, e.g. ``RE321D05M/RE321D05M-Q11@10=person_half_front``)::

    out/
      all_poseA_poseB_clothes_0607.txt    "<A>\\t<B>\\t<cloth>\\t<split>": every ordered pair of two
                                          different photos of an identity, split train/test by identity
      synthetic.json                      generator arguments, each identity's garment and photos
      all/RE00000D05M/RE00000D05M-Q11@10=person_half_front.jpg    person photos, RGB JPEG
      all/RE00000D05M/RE00000D05M-Q11@8=cloth_front.jpg           in-shop garment on white, RGB JPEG
      all/RE00000D05M/RE00000D05M-Q11@8=cloth_front_mask.jpg      its mask, grayscale JPEG 0/255
                                                                  (the naming of the MPV-derived repos)
      all_parsing/<person rel>.png                                LIP labels, palette PNG
      all_person_clothes_keypoints/<person rel>_keypoints.json    COCO-18, old OpenPose JSON
                                                                  {"people": [{"pose_keypoints": [x, y, c] * 18}]}

Photo views: identity ``i``'s photos are ``@10=person_half_front`` and ``@11=person_whole_front``,
and every third identity (``i % 3 == 2``) has a third, ``@12=person_half_back``, so
``front_only`` has something to drop. The generator only draws frontal bodies: "back" is a name
here, not a view. Keypoints are the BODY_25 joints converted to COCO-18 by
``shards.synthetic.coco18_json`` (``convert_pose``: the mid hip and feet are dropped; rounded to
4 decimals).

Determinism: identity ``i`` draws from ``SeedSequence([seed, i])`` only (body, then per photo:
the new pose for photos after the first, then keypoint confidences), so it does not depend on
``n``; the same arguments give byte-identical files.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from shards.layouts.mpv import IMAGE_DIR, PAIRS_FILES, PARSE_DIR, POSE_DIR
from shards.synthetic import (
    checked_arguments,
    coco18_json,
    draw_parse,
    jpeg_bytes,
    keypoints25,
    palette_png,
    prepare_output,
    render_cloth,
    render_person,
    repose,
    sample_body,
    split_counts,
    write_marker,
)

LAYOUT = "mpv"
TRIPLETS_FILE = PAIRS_FILES[1]  # all_poseA_poseB_clothes_0607.txt, the later revision
FOLDERS = (IMAGE_DIR, PARSE_DIR, POSE_DIR)
VIEWS = ("person_half_front", "person_whole_front", "person_half_back")
CLOTH_VIEW = "cloth_front"
TEST_FRACTION = 0.25


def product(i: int) -> str:
    """MPV-like product code of identity ``i`` (9+ characters, upper case and digits)."""
    return f"RE{i:05d}D05M"


def photo_name(i: int, j: int) -> str:
    code = product(i)
    return f"{code}/{code}-Q11@{10 + j}={VIEWS[j]}.jpg"


def cloth_name(i: int) -> str:
    code = product(i)
    return f"{code}/{code}-Q11@8={CLOTH_VIEW}.jpg"


def photos_of(i: int) -> int:
    return 3 if i % 3 == 2 else 2


def _write(root: Path, rel: str, data: bytes) -> int:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return len(data)


def write_identity(out: Path, i: int, size: tuple[int, int], seed: int) -> dict:
    """Draw identity ``i`` (one garment, ``photos_of(i)`` poses) and write its files."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, i]))
    body = sample_body(rng, size)
    cloth, mask = render_cloth(body, size)
    stem = cloth_name(i)[:-4]
    total = _write(out / IMAGE_DIR, cloth_name(i), jpeg_bytes(cloth))
    total += _write(out / IMAGE_DIR, f"{stem}_mask.jpg", jpeg_bytes(mask * 255))
    photos = []
    for j in range(photos_of(i)):
        pose_body = body if j == 0 else repose(body, size, rng)
        parse = draw_parse(pose_body, size)
        kp = keypoints25(pose_body, size, rng)
        rel = photo_name(i, j)
        total += _write(out / IMAGE_DIR, rel, jpeg_bytes(render_person(pose_body, parse)))
        total += _write(out / PARSE_DIR, f"{rel[:-4]}.png", palette_png(parse))
        total += _write(out / POSE_DIR, f"{rel[:-4]}_keypoints.json", coco18_json(kp))
        photos.append(rel)
    return {"id": product(i), "cloth": cloth_name(i), "photos": photos, "garment": body.garment.card(),
            "bytes": total}


def synthesize(out: Path, n: int = 64, size: tuple[int, int] = (64, 48), seed: int = 0) -> dict:
    """Write ``n`` synthetic identities of ``size`` (H, W) in MPV's layout under ``out``.

    The first ``n - n_test`` identities (``n_test`` = a quarter, at least one when ``n >= 2``) are
    ``train``, the rest ``test``. Returns a report: root, layout, triplets file, counts per split
    (identities, person photos, cloths, triplets, front-only triplets), files, bytes.
    """
    out = Path(out)
    h, w = checked_arguments(n, size, 99999, "5-digit product numbers")
    prepare_output(out, FOLDERS, PAIRS_FILES)
    n_train, _ = split_counts(n, TEST_FRACTION)
    cards, lines, total = [], [], 0
    counts = {split: {"identities": 0, "persons": 0, "cloths": 0, "triplets": 0, "front_triplets": 0}
              for split in ("train", "test")}
    for i in range(n):
        split = "train" if i < n_train else "test"
        card = write_identity(out, i, (h, w), seed)
        total += card.pop("bytes")
        cards.append({**card, "split": split})
        c = counts[split]
        c["identities"] += 1
        c["cloths"] += 1
        c["persons"] += len(card["photos"])
        for a in card["photos"]:
            for b in card["photos"]:
                if a != b:
                    lines.append(f"{a}\t{b}\t{card['cloth']}\t{split}\n")
                    c["triplets"] += 1
                    c["front_triplets"] += "front" in a and "front" in b
    triplets = out / TRIPLETS_FILE
    triplets.write_text("".join(lines))
    write_marker(out, "shards.synthetic_mpv", LAYOUT, n=n, size=[h, w], seed=seed, test_fraction=TEST_FRACTION,
                 identities=cards)
    persons = sum(c["persons"] for c in counts.values())
    return {
        "root": str(out),
        "layout": LAYOUT,
        "size": [h, w],
        "seed": seed,
        "counts": counts,
        "triplets_file": str(triplets),
        "pairs_files": {TRIPLETS_FILE: str(triplets)},
        "files": 3 * persons + 2 * n + 2,
        "bytes": total,
    }
