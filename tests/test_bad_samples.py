"""Bad samples judged over the run, counted across ranks, visible in metrics and tags, and gated.

The data is hand-made shards on local disk (file://: the stream's code path is the same as on S3)
in which chosen samples carry a person.jpg that is not a JPEG.
"""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from stream_checks import publish_shards, source_samples, take

from orchestrator.checkpoints.state import TrainingPosition
from orchestrator.config import load_config
from orchestrator.train.bad_samples import BAD_FRACTION_TAG, BadSampleCounter
from orchestrator.train.loop import GanLoop, WorkerContext
from shards.stream import ShardStream, StreamConfig, StreamPosition, TooManyBadSamplesError
from shards.synthetic import synthesize

REPO = Path(__file__).resolve().parents[1]
NOT_A_JPEG = b"\xff\xd8\xff\xe0 this is not a JPEG"


@pytest.fixture(scope="module")
def samples(tmp_path_factory) -> list:
    root = tmp_path_factory.mktemp("bad-samples")
    synthesize(root, n=64, size=(64, 48), seed=11)  # 48 train samples
    return source_samples(root, 48)


def shards_with_bad(samples: list, url: str, bad_positions: set[int]) -> str:
    """One shard (tar order = read order within a block) with the samples at ``bad_positions`` broken."""
    broken = [(k, {**m, "person.jpg": NOT_A_JPEG} if i in bad_positions else m) for i, (k, m) in enumerate(samples)]
    publish_shards(url, [broken])
    return f"{url}/manifest.json"


def test_two_bad_among_a_workers_first_reads_do_not_stop_a_clean_enough_dataset(samples, tmp_path):
    """2 of 48 bad (4.2%) under max_bad_fraction 5%: both are among the first 8 reads. Judged per
    worker with a floor of 20 reads this raised (2 > 5% of 20); judged against the dataset it does not."""
    manifest = shards_with_bad(samples, f"file://{tmp_path}/s", {0, 1})
    cfg = StreamConfig(manifest, batch_size=4, image_size=(64, 48), loader_workers=0, shuffle_buffer=8,
                       max_bad_fraction=0.05, augment=False)
    stream = ShardStream(cfg)
    batches = take(stream.iter_from(StreamPosition()), stream.batches_per_epoch)
    assert stream.batches_per_epoch * 4 == 48  # one epoch reads every sample once (no wrap-around)
    assert sum(int(b["__bad__"]) for b in batches[:2]) == 2  # both met in the first block of 8
    assert stream.bad_sample_stats.bad == 2 and sum(int(b["__bad__"]) for b in batches) == 2

    too_many = shards_with_bad(samples, f"file://{tmp_path}/t", {0, 1, 2})  # 6.25%: over the limit
    stream = ShardStream(StreamConfig(too_many, batch_size=4, image_size=(64, 48), loader_workers=0,
                                      shuffle_buffer=8, max_bad_fraction=0.05, augment=False))
    with pytest.raises(TooManyBadSamplesError, match=r"3 of \d+ samples read were bad"):
        take(stream.iter_from(StreamPosition()), stream.batches_per_epoch)


def loop_config(manifest: str, *overrides: str):
    return load_config(REPO / "configs" / "unet_sa" / "demo.yaml", [
        f"data.manifest={manifest}", "data.val_manifest=", "data.loader_workers=0", "data.augment=false",
        "data.batch_size=4", "data.shuffle_buffer=12", "model.ngf=8", "model.ndf=8", "tracking.enabled=false",
        "precision.mode=fp32", "train.steps=4", "train.log_every=2", "train.sample_every=0",
        "checkpoint.every_n_steps=1000", *overrides])


def test_the_trainer_counts_bad_samples_into_metrics_position_and_tags(samples, tmp_path):
    manifest = shards_with_bad(samples, f"file://{tmp_path}/s", {0, 1})
    loop = GanLoop(loop_config(manifest), WorkerContext())
    result = loop.run()
    metrics = result.last_metrics
    read = loop.position.batches_consumed * 4 + 2  # every sample of every batch, and the two skipped
    assert metrics["data/bad_samples"] == 2 and metrics["data/samples_read"] == read
    assert metrics["data/bad_fraction"] == pytest.approx(2 / read)
    assert (loop.position.bad_samples, loop.position.samples_read) == (2, read)  # checkpointed with the step
    assert loop.bad_samples.tags() == {"bad_samples": "2", "samples_read": str(read),
                                       BAD_FRACTION_TAG: f"{2 / read:.6g}"}


def _rank(rank: int, port: int, bad: int, out: str) -> None:
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    try:
        position = TrainingPosition()
        counter = BadSampleCounter(position, 0.05, 100, "s3://b/m.json", torch.device("cpu"))
        counter.add({"__bad__": torch.tensor(bad), "__key__": ["k"] * 4})
        totals = counter.settle()
        counter.add({"__bad__": torch.tensor(3), "__key__": ["k"] * 4})
        try:
            counter.settle()
            raised = ""
        except TooManyBadSamplesError as exc:
            raised = str(exc)
        torch.save({"totals": totals, "raised": raised}, out.replace("RANK", str(rank)))
    finally:
        dist.destroy_process_group()


def test_counts_are_summed_across_ranks_and_every_rank_judges_alike(tmp_path):
    """Rank 0 met 1 bad sample, rank 1 met 2: both report 3 of 11; then 3 more each make 9 > 5% of
    100, and both ranks raise at the same settle (a collective: neither may leave the other waiting)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = str(tmp_path / "rankRANK.pt")
    mp.spawn(_two_ranks, args=(port, out), nprocs=2, join=True)
    for rank in (0, 1):
        got = torch.load(out.replace("RANK", str(rank)))
        assert got["totals"] == {"data/bad_samples": 3.0, "data/samples_read": 11.0, "data/bad_fraction": 3 / 11}
        assert "9 of the 25 samples this run read (all ranks) were bad" in got["raised"]


def _two_ranks(rank: int, port: int, out: str) -> None:
    _rank(rank, port, 1 + rank, out)
