"""`vton tryon`: try-on images from a registered model for user-provided inputs.

This system runs no pose or parsing estimator, so every modality the model's representation needs
must come from the user: one person image with ``--pose`` (OpenPose JSON) and ``--parse`` (LIP
label PNG), or a folder in the VITON-HD test layout (``image/``, ``openpose_json/``,
``image-parse-v3/`` or ``image-parse/``, optional ``openpose_img/``) where they are found by name.
A missing one is an error naming the flag or file to provide; guessing a pose or a parse would
produce an image that looks like the model's failure. The same goes for the garment mask of a
model that reads it (VITON-HD's): ``--cloth-mask``, or ``cloth-mask/<cloth name>`` beside the
cloth's folder. A rendered OpenPose image (``--pose-image``, ``openpose_img/<name>_rendered.png``)
is used where the model reads one, as its official weights were trained on it.

A multi-pose model (representation ``multipose``: seed 002's and 004's) renders the person in
another pose: ``--target-pose`` (OpenPose JSON, in the person image's pixel frame) gives it, for
every person. The target's photo and parse, which training reads as ground truth, do not exist
here; they are passed blank and the model reads neither (its face box comes from the pose).

Only a model whose output is a try-on serves here: a multi-stage family's stages are trained
teacher-forced (they read the ground truth the person already wears) and cannot put a new garment
on anyone; its try-on chain (``vton-<family>@champion``) can.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

from orchestrator.evaluation.evaluate import EvalError
from orchestrator.registry.models import load_registered

IMAGE_EXTS = (".jpg", ".jpeg", ".png")
PARSE_DIRS = ("image-parse-v3", "image-parse")
POSE_DIRS = ("openpose_json", "openpose-json", "pose")  # VITON-HD's, and CP-VTON's VITON layout
POSE_IMG_DIRS = ("openpose_img", "openpose-img")


class TryonError(EvalError):
    """Missing or unusable user input; the message names what to provide."""


@dataclass(frozen=True)
class PersonInput:
    key: str
    image: Path
    pose: Path
    parse: Path
    pose_image: Path | None = None


def _read(path: Path, what: str) -> bytes:
    if not path.is_file():
        raise TryonError(f"{what}: {path} does not exist")
    return path.read_bytes()


def _first(root: Path, dirs: tuple[str, ...], name: str) -> Path | None:
    return next((root / d / name for d in dirs if (root / d / name).is_file()), None)


def collect_persons(person: Path, pose: Path | None, parse: Path | None,
                    pose_image: Path | None = None) -> list[PersonInput]:
    """One image (+ --pose, --parse) or every image of a VITON-HD layout folder."""
    if person.is_file():
        missing = [flag for flag, value in (("--pose JSON (OpenPose BODY_25 keypoints)", pose),
                                            ("--parse PNG (LIP label map, values 0-19)", parse)) if value is None]
        if missing:
            raise TryonError(f"--person {person}: this system runs no pose or parsing estimator; provide "
                             + " and ".join(missing))
        return [PersonInput(person.stem, person, pose, parse, pose_image)]  # type: ignore[arg-type]
    if not person.is_dir():
        raise TryonError(f"--person {person}: no such file or folder")
    images_dir = person / "image"
    if not images_dir.is_dir():
        raise TryonError(f"--person {person}: a folder must use the VITON-HD layout (image/, openpose_json/, "
                         "image-parse-v3/) or CP-VTON's (image/, pose/, image-parse/); no image/ folder found")
    images = sorted(p for p in images_dir.iterdir() if p.suffix.lower() in IMAGE_EXTS)
    if not images:
        raise TryonError(f"--person {person}: {images_dir} holds no .jpg/.png images")
    out = []
    for img in images:
        pose_path = _first(person, POSE_DIRS, f"{img.stem}_keypoints.json")
        parse_path = _first(person, PARSE_DIRS, f"{img.stem}.png")
        if pose_path is None or parse_path is None:
            need = [f"{person}/{POSE_DIRS[0]}/{img.stem}_keypoints.json"] if pose_path is None else []
            need += [f"{person}/{PARSE_DIRS[0]}/{img.stem}.png"] if parse_path is None else []
            raise TryonError(f"person {img.name}: missing {', '.join(need)} (pose and parse are not estimated here)")
        out.append(PersonInput(img.stem, img, pose_path, parse_path,
                               _first(person, POSE_IMG_DIRS, f"{img.stem}_rendered.png")))
    return out


def read_target_pose(path: Path) -> tuple[np.ndarray, str]:
    """Keypoints and format of ``--target-pose``."""
    from shards.decode import BadSampleError, decode_pose

    try:
        return decode_pose(_read(path, "--target-pose"), path.stem, None)
    except BadSampleError as exc:
        raise TryonError(f"--target-pose {path}: {exc}") from None


def _sample(person: PersonInput, cloth: np.ndarray, cloth_mask: np.ndarray,
            target_pose: tuple[np.ndarray, str] | None = None):
    from shards.decode import BadSampleError, decode_labels, decode_pose, decode_pose_image, decode_rgb
    from vton_models.representation.sample import DecodedSample, PersonView

    try:
        image = decode_rgb(_read(person.image, "--person"), person.key, str(person.image))
        parse = decode_labels(_read(person.parse, "--parse"), person.key, str(person.parse))
        pose, fmt = decode_pose(_read(person.pose, "--pose"), person.key, None)
    except BadSampleError as exc:
        raise TryonError(str(exc)) from None
    try:
        pose_img = (decode_pose_image(_read(person.pose_image, "--pose-image"), person.key, image.shape[:2])
                    if person.pose_image is not None else None)
    except BadSampleError as exc:
        raise TryonError(f"--pose-image {person.pose_image}: {exc}") from None
    h, w = image.shape[:2]
    if parse.shape != (h, w):
        raise TryonError(f"--parse {person.parse}: {parse.shape[0]}x{parse.shape[1]}, but the person image is {h}x{w}")
    if int(parse.max()) > 19:
        raise TryonError(f"--parse {person.parse}: labels up to {int(parse.max())}; LIP labels are 0..19")
    c = cv2.resize(cloth, (w, h), interpolation=cv2.INTER_AREA)
    m = cv2.resize(cloth_mask, (w, h), interpolation=cv2.INTER_NEAREST)
    target = None if target_pose is None else PersonView(
        person=np.zeros_like(image), parse=np.zeros_like(parse), pose=target_pose[0], pose_format=target_pose[1])
    return DecodedSample(person=image, cloth=c, cloth_mask=m, parse=parse, pose=pose, pose_format=fmt, key=person.key,
                         pose_img=pose_img, target=target)


def _cloth(cloth: Path, cloth_mask: Path | None, mask_required_by: str | None) -> tuple[np.ndarray, np.ndarray]:
    """The garment and its mask: ``--cloth-mask``, else ``cloth-mask/<name>`` beside the cloth's
    folder; without either, an error when the model reads the mask (``mask_required_by`` names it),
    else the mask the shard decoder would derive (the photo's non-white pixels)."""
    from shards.decode import BadSampleError, decode_mask, decode_rgb, derive_cloth_mask

    try:
        image = decode_rgb(_read(cloth, "--cloth"), cloth.stem, str(cloth))
        guess = cloth.parent.parent / "cloth-mask" / cloth.name
        if cloth_mask is None:
            cloth_mask = guess if guess.is_file() else None
        if cloth_mask is None:
            if mask_required_by is not None:
                raise TryonError(f"--cloth {cloth}: {mask_required_by} reads the garment mask; give --cloth-mask "
                                 f"PNG (0/255) or put it at {guess}")
            return image, derive_cloth_mask(image)
        mask = decode_mask(_read(cloth_mask, "--cloth-mask"), cloth.stem, str(cloth_mask))
    except BadSampleError as exc:
        raise TryonError(str(exc)) from None
    if mask.shape != image.shape[:2]:
        raise TryonError(f"--cloth-mask {cloth_mask}: {mask.shape} differs from the cloth image {image.shape[:2]}")
    return image, mask


def check_tries_on(recipe, model_uri: str) -> None:
    """A model that cannot put a new garment on a person is refused, pointing at the one that can."""
    family = recipe.name.split(".")[0]
    if not recipe.tries_on:
        raise TryonError(f"model {model_uri} is the '{recipe.name}' stage, whose output is an intermediate, not a "
                         f"try-on; use the family's try-on chain (models:/vton-{family}@champion: `vton models chain "
                         f"{family}` registers it)")
    forcing = recipe.teacher_forcing()
    if forcing:
        raise TryonError(f"model {model_uri} is the '{recipe.name}' stage, trained teacher-forced ({forcing}): it "
                         f"would re-render the person's own garment, not the one given; use the family's try-on "
                         f"chain (models:/vton-{family}@champion: `vton models chain {family}` registers it)")


def run_tryon(model_uri: str, person: Path, cloth: Path, out: Path, pose: Path | None = None,
              parse: Path | None = None, cloth_mask: Path | None = None, batch_size: int = 8,
              pose_image: Path | None = None, target_pose: Path | None = None) -> list[Path]:
    """Write ``out/<person>.png`` per person and ``out/sheet.png`` (person | cloth | [target pose |]
    try-on rows)."""
    from orchestrator.recipes import build_recipe_from_config
    from orchestrator.registry.stages import attach_consumed_stages
    from orchestrator.registry.tracking import image_grid
    from shards.collate import collate
    from shards.transforms import resize_sample
    from vton_models.registry import get_representation
    from vton_models.visual import pose_image as pose_panel

    persons = collect_persons(Path(person), pose and Path(pose), parse and Path(parse), pose_image and Path(pose_image))
    model = load_registered(model_uri)
    cfg = model.config
    recipe = build_recipe_from_config(cfg)
    attach_consumed_stages(recipe)
    check_tries_on(recipe, model_uri)
    representation = get_representation(cfg.data.representation or recipe.representation.name)
    multipose = "target" in representation.reads
    if multipose and target_pose is None:
        raise TryonError(f"model {model_uri} ({recipe.name}) puts the garment on the person in another pose: give "
                         "--target-pose JSON (OpenPose keypoints of the pose to render, in the person image's frame)")
    if target_pose is not None and not multipose:
        raise TryonError(f"--target-pose: model {model_uri} ({recipe.name}) renders the person in their own pose; "
                         "drop --target-pose")
    target = read_target_pose(Path(target_pose)) if target_pose is not None else None
    reads_mask = "cloth_mask.png" in representation.reads or recipe.reads_cloth_mask
    cloth_img, mask = _cloth(Path(cloth), cloth_mask and Path(cloth_mask),
                             f"model {model_uri} ({recipe.name})" if reads_mask else None)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    size = tuple(cfg.data.image_size)
    written, rows = [], []
    with torch.no_grad():
        for start in range(0, len(persons), batch_size):
            chunk = persons[start:start + batch_size]
            arrays = [representation(resize_sample(_sample(p, cloth_img, mask, target), size),
                                     sigma=cfg.data.pose_sigma) for p in chunk]
            batch = collate(arrays, [p.key for p in chunk])
            inputs = recipe.inputs(batch)
            fake = recipe.generate(model.networks, inputs).clamp(-1, 1)
            for i, p in enumerate(chunk):
                rgb = ((fake[i].permute(1, 2, 0).numpy() + 1) * 127.5).round().astype(np.uint8)
                path = out / f"{p.key}.png"
                cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
                written.append(path)
            columns = ([batch["src_person"], batch["cloth"], pose_panel(batch["tgt_pose"]), fake] if multipose
                       else [batch["person"], batch["cloth"], fake])
            rows.append(image_grid(columns, max_rows=len(chunk)))
    sheet = np.concatenate(rows, axis=0)
    cv2.imwrite(str(out / "sheet.png"), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR))
    return written + [out / "sheet.png"]
