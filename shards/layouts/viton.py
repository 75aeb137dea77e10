"""VITON / CP-VTON (Han et al. 2018; Wang et al. 2018), 256x192, COCO-18 pose.

Layout, checked against sergeywong/cp-vton ``cp_dataset.py``::

    {train,test}_pairs.txt          "<id>_0.jpg <id>_1.jpg"; test_pairs.txt lists other persons' clothes
    {split}/image/<id>_0.jpg        -> person.jpg
    {split}/cloth/<id>_1.jpg        -> cloth.jpg  (the garment <id>_0 wears)
    {split}/cloth-mask/<id>_1.jpg   -> cloth_mask.png (bytes copied: a JPEG; CP-VTON thresholds > 200)
    {split}/image-parse/<id>_0.png  -> parse.png (LIP labels)
    {split}/pose/<id>_0_keypoints.json -> pose.json (COCO-18; key "pose_keypoints", older OpenPose)

A person named ``<id>_0`` wears ``<id>_1``; for a name without the ``_0`` suffix the listed cloth
is taken as the worn one (the list is then assumed paired).
"""

from __future__ import annotations

from pathlib import Path

from shards.layouts.common import strip_ext
from shards.layouts.pairs import MemberResolver, PairsLayout


def _members(split_dir: Path) -> MemberResolver:
    def members(person: str, worn: str):
        stem = strip_ext(person)
        required = {
            "person.jpg": [split_dir / "image" / person],
            "cloth.jpg": [split_dir / "cloth" / worn],
            "cloth_mask.png": [split_dir / "cloth-mask" / worn, split_dir / "cloth-mask" / f"{strip_ext(worn)}.png"],
            "parse.png": [split_dir / "image-parse" / f"{stem}.png"],
            "pose.json": [split_dir / "pose" / f"{stem}_keypoints.json"],
        }
        return required, {}

    return members


def _worn_cloth(person: str, listed: str) -> str:
    stem = strip_ext(person)
    if stem.endswith("_0"):
        return f"{stem[:-2]}_1{person[len(stem):]}"
    return listed


LAYOUT = PairsLayout(name="viton", pose_format="coco18", worn_cloth=_worn_cloth, members=_members)
read = LAYOUT.read
