"""Small synthetic shard sets on local disk, shared by the in-process training tests."""

from __future__ import annotations

from pathlib import Path

import pytest


def local_shards(root: Path, n: int, size: tuple[int, int], seed: int, layout: str = "viton_hd",
                 synthetic: str | None = None) -> Path:
    """A synthetic set under ``root/data`` (drawn as ``synthetic``, default ``layout``; "mpv" for
    ``mpv_triplets``), read as ``layout`` and sharded to ``root/shards/{train,test}`` (file://)."""
    from shards.synthetic import synthesize_layout
    from shards.writer import build_shards

    synthesize_layout(synthetic or layout, root / "data", n=n, size=size, seed=seed)
    for split in ("train", "test"):
        build_shards(layout, root / "data", split, f"file://{root}/shards/{split}", workers=1)
    return root


def shard_to_s3(data: Path, layout: str, bucket: str, tag: str) -> str:
    """The train and test splits of a dataset on disk, sharded to a fresh ``s3://bucket/tests/<tag>-<id>/``."""
    import uuid

    from shards.writer import build_shards

    prefix = f"s3://{bucket}/tests/{tag}-{uuid.uuid4().hex[:8]}"
    for split in ("train", "test"):
        build_shards(layout, data, split, f"{prefix}/{split}", workers=1)
    return prefix


def s3_shards(root: Path, bucket: str, tag: str, n: int, seed: int) -> str:
    """A synthetic VITON-HD set sharded to a fresh ``s3://bucket/tests/<tag>-<id>/{train,test}``."""
    from shards.synthetic import synthesize

    synthesize(root / "data", n=n, size=(64, 48), seed=seed)
    return shard_to_s3(root / "data", "viton_hd", bucket, tag)


def multipose_tryon(model: str, data: Path, out: Path, cloths: int = 2,
                    target_pose: bool = True) -> list[tuple[int, Path, str]]:
    """``vton tryon`` of a multi-pose ``model`` as a user runs it on an MPV test triplet: person A
    with its pose and parse, rendered in B's pose (``target_pose``), once per garment. Per garment:
    (exit code, the picture it wrote, its stderr)."""
    import contextlib
    import io

    from orchestrator.cli import main

    line = next(line.split("\t") for line in (data / "all_poseA_poseB_clothes_0607.txt").read_text().splitlines()
                if line.endswith("test"))
    a, b = Path(line[0]), Path(line[1])
    keypoints = data / "all_person_clothes_keypoints"
    person = ["--person", str(data / "all" / a), "--pose", str(keypoints / a.parent / f"{a.stem}_keypoints.json"),
              "--parse", str(data / "all_parsing" / a.with_suffix(".png"))]
    target = ["--target-pose", str(keypoints / b.parent / f"{b.stem}_keypoints.json")] if target_pose else []
    runs = []
    for i, cloth in enumerate(sorted(data.glob("all/*/*=cloth_front.jpg"))[:cloths]):
        err = io.StringIO()
        with contextlib.redirect_stderr(err):
            code = main(["tryon", "--model", model, *person, "--cloth", str(cloth), "--cloth-mask",
                         str(cloth.with_name(cloth.stem + "_mask.jpg")), *target, "--out", str(out / f"o{i}")])
        runs.append((code, out / f"o{i}" / f"{a.stem}.png", err.getvalue()))
    return runs


def decoded_samples(root: Path, layout: str = "viton_hd", split: str = "train") -> list:
    """Every sample of a layout's split, decoded as the stream would (no shards written)."""
    from shards.decode import decode_sample
    from shards.layouts import read_layout
    from shards.writer import serialise_meta

    out = []
    for s in read_layout(layout, root, split):
        members = {m: Path(p).read_bytes() for m, p in s.paths.items()}
        members["meta.json"] = serialise_meta(s.meta)
        out.append(decode_sample(members, s.key))
    return out


@pytest.fixture(scope="session")
def mpv_shards(tmp_path_factory) -> Path:
    """Synthetic MPV triplets at 64x64 (``mpv_triplets``; the parse U-Nets need multiples of 64),
    shared by the multi-pose families' tests: ``root/data`` and ``root/shards/{train,test}``."""
    return local_shards(tmp_path_factory.mktemp("mpv"), 24, (64, 64), 8, layout="mpv_triplets", synthetic="mpv")
