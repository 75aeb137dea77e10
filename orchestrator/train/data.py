"""From the run config to the shard streams a worker reads (training and held-out)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Iterator

from orchestrator.config import Config
from vton_models.recipe import Recipe


def representation_placement(cfg: Config, representation: str, device: str) -> str:
    """``data.representation_on`` resolved for a training device (see DataConfig)."""
    from vton_models.registry import get_representation

    if cfg.data.representation_on != "auto":
        return cfg.data.representation_on
    on_gpu = device.split(":")[0] in ("cuda", "xpu", "mps")
    return "consumer" if on_gpu and get_representation(representation).has_device_form else "loader"


def _stream_config(cfg: Config, recipe: Recipe, manifest: str, train: bool, device: str = "cpu"):
    from shards.stream import StreamConfig

    representation = cfg.data.representation or recipe.representation.name
    return StreamConfig(
        manifest_url=manifest,
        batch_size=cfg.data.batch_size,
        image_size=tuple(cfg.data.image_size),
        representation=representation,
        representation_on=representation_placement(cfg, representation, device),
        device=device,
        representation_options={"sigma": cfg.data.pose_sigma},
        loader_workers=cfg.data.loader_workers if train else 0,
        shuffle_buffer=cfg.data.shuffle_buffer if train else 1,
        augment=cfg.data.augment and train,
        augment_options=dict(cfg.data.augment_options),
        seed=cfg.train.seed if train else 0,
        max_bad_fraction=cfg.data.max_bad_fraction,
        check_digests=cfg.data.check_digests,
    )


@dataclass
class TrainStream:
    """The training stream addressed by the number of micro-batches already consumed.

    The checkpoint stores that one counter; this turns it into the stream's (epoch, step) position.
    """

    stream: object

    @property
    def batches_per_epoch(self) -> int:
        return self.stream.batches_per_epoch

    def iter_from_batches(self, consumed: int) -> Iterator[dict]:
        from shards.stream import StreamPosition

        epoch, step = divmod(consumed, self.stream.batches_per_epoch)
        return iter(self.stream.iter_from(StreamPosition(epoch=epoch, step=step)))


def make_train_stream(cfg: Config, recipe: Recipe, rank: int, world_size: int, device: str = "cpu") -> TrainStream:
    from shards.stream import ShardStream

    if not cfg.data.manifest:
        raise ValueError("data.manifest is empty: point it at a manifest.json written by `vton shard build`")
    stream_cfg = _stream_config(cfg, recipe, cfg.data.manifest, train=True, device=device)
    return TrainStream(ShardStream(stream_cfg, rank, world_size))


def make_val_stream(cfg: Config, recipe: Recipe, rank: int, world_size: int, device: str = "cpu"):
    """Held-out batches: no augmentation, no shuffle buffer, loaded in-process."""
    from shards.stream import ShardStream

    stream_cfg = _stream_config(cfg, recipe, cfg.data.val_manifest, train=False, device=device)
    return ShardStream(stream_cfg, rank, world_size)


def stream_manifest(stream: object):
    """The manifest a ``TrainStream`` reads; None for a stream without one (an in-process test stream)."""
    return getattr(getattr(stream, "stream", None), "manifest", None)


def stream_data_tags(stream: object, recipe: Recipe) -> dict[str, str]:
    """Tags saying which optional members the recipe's representation used (e.g. VITON-HD's
    dataset-rendered pose images vs drawn ones), from the train stream's manifest; empty for a
    stream without one."""
    manifest = stream_manifest(stream)
    if manifest is None:
        return {}
    return recipe.representation.data_tags(manifest.members, manifest.totals["samples"])


def manifest_sha256(url: str) -> str:
    """Identity of the dataset a model was trained on (recorded as a model version tag)."""
    from shards.store import split_url

    store, name = split_url(url)
    return hashlib.sha256(store.get_bytes(name)).hexdigest()


def probe_batch_shapes(manifest_url: str, representation: str, image_size: tuple[int, int],
                       options: dict) -> dict[str, tuple[int, ...]]:
    """Per-sample array shapes the loader would produce, from the first sample of the first shard.

    One small read lets the driver reject a model whose inputs do not match the data before any
    worker starts.
    """
    from shards.decode import decode_sample
    from shards.manifest import Manifest
    from shards.tario import scan_shard
    from shards.transforms import resize_sample
    from vton_models.registry import get_representation

    manifest = Manifest.load(manifest_url)
    if not manifest.shards:
        raise FileNotFoundError(f"{manifest_url} lists no shards")
    first = manifest.shards[0]
    with manifest.store().open_read(first.name) as stream:
        sample = next(scan_shard(stream, first.name))
    decoded = resize_sample(decode_sample(sample.members, sample.key), image_size)
    arrays = get_representation(representation)(decoded, **options)
    return {name: tuple(array.shape) for name, array in arrays.items()}
