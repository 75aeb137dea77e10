"""VITON-HD (Choi et al., CVPR'21; the "zalando-hd-resized" release) as published.

Layout, checked against shadow2496/VITON-HD ``datasets.py``/``test.py`` and HR-VITON's
``cp_dataset_test.py`` (which read the same release)::

    {train,test}_pairs.txt                  "<person>.jpg <cloth>.jpg"; test_pairs.txt is unpaired
    {split}/image/<id>.jpg                  -> person.jpg
    {split}/cloth/<id>.jpg                  -> cloth.jpg  (the garment <id> wears, same name)
    {split}/cloth-mask/<id>.jpg             -> cloth_mask.png (bytes copied: a JPEG, 0/255)
    {split}/image-parse-v3/<id>.png         -> parse.png  (also spelled image-parse/)
    {split}/openpose_json/<id>_keypoints.json -> pose.json (BODY_25; also spelled openpose-json/)
    {split}/agnostic-v3.2/<id>.jpg          -> agnostic.jpg        (optional)
    {split}/image-parse-agnostic-v3.2/<id>.png -> parse_agnostic.png (optional)
    {split}/image-densepose/<id>.jpg        -> densepose.png       (optional; bytes are a JPEG)
    {split}/openpose_img/<id>_rendered.png  -> pose_img.png        (optional; also spelled openpose-img/)

The rendered OpenPose image is carried because the official networks were trained on it (the
official ``datasets.py`` feeds ``openpose-img/*_rendered.png`` as the pose input); the ``viton_hd``
representation draws its own skeleton only for samples that lack it. ``agnostic-mask/`` is not
part of the shard contract and is not read.
Where both folder spellings exist the VITON-HD-release spelling wins for the whole split, so one
split never mixes sources.
"""

from __future__ import annotations

from pathlib import Path

from shards.layouts.common import first_existing, strip_ext
from shards.layouts.pairs import MemberResolver, PairsLayout

PARSE_DIRS = ("image-parse-v3", "image-parse")
POSE_DIRS = ("openpose_json", "openpose-json")
POSE_IMG_DIRS = ("openpose_img", "openpose-img")


def _members(split_dir: Path) -> MemberResolver:
    parse_dir = first_existing(split_dir, PARSE_DIRS)
    pose_dir = first_existing(split_dir, POSE_DIRS)
    pose_img_dir = first_existing(split_dir, POSE_IMG_DIRS)

    def members(person: str, worn: str):
        stem = strip_ext(person)
        cloth_stem = strip_ext(worn)
        required = {
            "person.jpg": [split_dir / "image" / person],
            "cloth.jpg": [split_dir / "cloth" / worn],
            "cloth_mask.png": [split_dir / "cloth-mask" / worn, split_dir / "cloth-mask" / f"{cloth_stem}.png"],
            "parse.png": [parse_dir / f"{stem}.png"],
            "pose.json": [pose_dir / f"{stem}_keypoints.json"],
        }
        optional = {
            "agnostic.jpg": [split_dir / "agnostic-v3.2" / person],
            "parse_agnostic.png": [split_dir / "image-parse-agnostic-v3.2" / f"{stem}.png"],
            "densepose.png": [split_dir / "image-densepose" / person, split_dir / "image-densepose" / f"{stem}.png"],
            "pose_img.png": [pose_img_dir / f"{stem}_rendered.png"],
        }
        return required, optional

    return members


def _worn_cloth(person: str, listed: str) -> str:
    """In VITON-HD the garment worn in ``image/X.jpg`` is ``cloth/X.jpg``."""
    return person


LAYOUT = PairsLayout(name="viton_hd", pose_format="body25", worn_cloth=_worn_cloth, members=_members)
read = LAYOUT.read
