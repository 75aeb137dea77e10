"""Tiny deterministic training runs whose results must not change when the trainer is reshaped.

Each run trains a real recipe for a few optimizer steps on the synthetic shards (file://, no
augmentation, deterministic algorithms) and is summarised by the sha256 of every final network
state dict (G, D and the EMA copy, parameters and buffers, in key order) and the loss terms of its
last step on every rank. ``tests/data/reference_results.json`` holds those summaries as recorded on
the commit named in the file; ``tests/test_reference_results.py`` re-runs them.

Record (only on purpose, when a result is *meant* to change, and say why in the commit):
``.venv/bin/python tests/reference_runs.py --record``.

Bit-identity holds per CPU model, not per capability level: an AMD EPYC and the recording's CPU
both report AVX512 and give different fp32 weights. ``--record-machine`` adds the digests of the
machine it runs on under ``digests_by_machine`` (keyed by ``machine_id``), and only after every run's
last losses agree with the original recording within the cross-machine tolerance; run it from the
commit that was last verified bit-identical elsewhere, so the new digests are that code's results.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).resolve().parent / "data" / "reference_results.json"
SIZE = (64, 48)

_COMMON = (
    "data.val_manifest=", "data.loader_workers=0", "data.augment=false", "tracking.enabled=false",
    "train.steps=3", "train.deterministic=true", "train.log_every=1", "train.sample_every=0",
    "train.eval_every=0", "checkpoint.every_n_steps=1000", "train.lr_plateau_patience=0",
    "data.image_size=64x48", "train.seed=7",
)
_UNET = ("model.recipe=unet_sa", "model.variant=reduced", "model.ngf=8", "model.ndf=8", "data.batch_size=2",
         "loss.weights.vgg=0")
_SEG = ("model.recipe=viton_hd.seg", "model.ngf=4", "model.ndf=8", "model.work_size=null", "data.batch_size=2")
_GMM = ("model.recipe=viton_hd.gmm", "model.ngf=8", "model.work_size=[64,64]", "data.batch_size=2",
        "loss.weights.mask_l1=0.5")
_ALIAS = ("model.recipe=viton_hd.alias", "model.ngf=4", "model.norm_hidden=8", "model.num_upsampling_layers=normal",
          "model.ndf=8", "loss.weights.vgg=0", "loss.gan_mode=hinge", "data.batch_size=2")

#: name -> (overrides, workers). The first six are the ones the family-folder issue names; the rest
#: pin the orders that phases must keep (accumulation, several D rounds, EMA, spectral norm in G).
RUNS: dict[str, tuple[tuple[str, ...], int]] = {
    "unet_sa/1w/fp32": (_UNET + ("precision.mode=fp32",), 1),
    "unet_sa/1w/bf16": (_UNET + ("precision.mode=bf16",), 1),
    "unet_sa/2w/fp32": (_UNET + ("precision.mode=fp32",), 2),
    "unet_sa/2w/bf16": (_UNET + ("precision.mode=bf16",), 2),
    "viton_hd.seg/1w/fp32": (_SEG + ("precision.mode=fp32",), 1),
    "viton_hd.gmm/1w/fp32": (_GMM + ("precision.mode=fp32",), 1),
    "viton_hd.alias/1w/fp32": (_ALIAS + ("precision.mode=fp32",), 1),
    "unet_sa/1w/fp32/accum2-dsteps2-ema": (_UNET + ("precision.mode=fp32", "train.grad_accum=2",
                                                    "train.d_steps_per_g=2", "train.ema_decay=0.9",
                                                    "train.grad_clip=1.0"), 1),
    "viton_hd.alias/1w/fp32/accum2": (_ALIAS + ("precision.mode=fp32", "train.grad_accum=2"), 1),
    "viton_hd.seg/1w/bf16": (_SEG + ("precision.mode=bf16",), 1),
}


def machine() -> dict[str, str]:
    """What bit-identity is conditional on: the same torch build on the same kind of CPU."""
    return {"torch": torch.__version__, "cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "machine": platform.machine()}


def machine_id() -> str:
    """The key of ``digests_by_machine``: CPU model, capability level, architecture, torch build."""
    m = machine()
    from orchestrator.hardware import cpu_model

    return f"{cpu_model()} | {m['cpu_capability']} | {m['machine']} | torch {m['torch']}"


def expected_digests(recorded: dict, name: str) -> tuple[dict | None, str]:
    """(the digests run ``name`` must reproduce here, whose): this machine's own recording, else the
    original one where the capability key matches (it names no CPU model; the CI machines it was
    verified on reproduce it), else None: the losses are compared within tolerance only."""
    own = recorded.get("digests_by_machine", {}).get(machine_id())
    if own is not None:
        return own["runs"][name], "this machine's"
    if recorded["machine"] == machine():
        return recorded["runs"][name]["digests"], "original"
    return None, "none"


def make_shards(root: Path) -> Path:
    from plugins.data import local_shards

    return local_shards(root, n=12, size=SIZE, seed=5)


def _config(root: Path, overrides: tuple[str, ...]):
    from orchestrator.config import load_config

    return load_config(None, [f"data.manifest=file://{root}/shards/train/manifest.json", *_COMMON, *overrides])


def _digest(loop) -> dict[str, str]:
    out = {}
    for name in sorted(s.name for s in loop.recipe.networks):
        out[name] = _state_digest(loop.strategy.module(name).state_dict())
    for name, ema in sorted(loop.emas.items()):
        out[f"ema/{name}"] = _state_digest(ema.module.state_dict())
    return out


def _state_digest(state: dict) -> str:
    h = hashlib.sha256()
    for key in sorted(state):
        value = state[key].detach().cpu().contiguous()
        h.update(key.encode())
        h.update(str(value.dtype).encode())
        h.update(value.numpy().tobytes() if value.dtype != torch.bfloat16 else value.view(torch.int16).numpy().tobytes())
    return h.hexdigest()


def _losses(metrics: dict) -> dict[str, float]:
    return {k: float(v) for k, v in sorted(metrics.items()) if k.startswith("loss/")}


def run_one(root: Path, name: str, rank: int = 0, world: int = 1) -> dict:
    """Train run ``name`` as rank ``rank`` of ``world`` (the process group must exist when world > 1)."""
    from orchestrator.train.loop import GanLoop, WorkerContext

    overrides, _ = RUNS[name]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # results depend on the thread count; the recorded runs used one
    try:
        loop = GanLoop(_config(root, overrides), WorkerContext(rank=rank, world_size=world))
        result = loop.run()
    finally:
        torch.set_num_threads(threads)
    return {"digests": _digest(loop), "losses": _losses(result.last_metrics), "steps": result.steps_run}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ddp_rank(rank: int, port: int, root: str, name: str, out: str) -> None:
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    try:
        summary = run_one(Path(root), name, rank, 2)
        Path(out.replace("RANK", str(rank))).write_text(json.dumps(summary))
    finally:
        dist.destroy_process_group()


def run(root: Path, name: str) -> dict:
    """Summary of run ``name``: digests (rank 0; every rank must agree) and losses per rank."""
    _, world = RUNS[name]
    if world == 1:
        summary = run_one(root, name)
        return {"digests": summary["digests"], "losses": [summary["losses"]], "steps": summary["steps"]}
    import torch.multiprocessing as mp

    with tempfile.TemporaryDirectory() as tmp:
        out = str(Path(tmp) / "rankRANK.json")
        mp.spawn(_ddp_rank, args=(_free_port(), str(root), name, out), nprocs=world, join=True)
        ranks = [json.loads(Path(out.replace("RANK", str(r))).read_text()) for r in range(world)]
    if any(r["digests"] != ranks[0]["digests"] for r in ranks):
        raise AssertionError(f"{name}: ranks ended with different weights")
    return {"digests": ranks[0]["digests"], "losses": [r["losses"] for r in ranks], "steps": ranks[0]["steps"]}


def _commit() -> str:
    out = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    return out.stdout.strip() or "unknown"


def record(names: list[str], reason: str) -> None:
    """Run ``names`` and store their results; each run keeps when and why it was (re)recorded, so a
    changed reference is always explained next to it."""
    existing = json.loads(RESULTS.read_text()) if RESULTS.is_file() else {"runs": {}}
    first = existing.pop("recorded_at", None)  # older files: one commit for every run
    for result in existing["runs"].values():
        result.setdefault("recorded_at", first)
    with tempfile.TemporaryDirectory() as tmp:
        root = make_shards(Path(tmp))
        for name in names:
            existing["runs"][name] = {**run(root, name), "recorded_at": f"{_commit()} + working tree",
                                      "reason": reason}
            print(f"{name}: {existing['runs'][name]['digests']}", flush=True)
    existing.update(machine=machine(), size=list(SIZE))
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(existing, indent=1, sort_keys=True) + "\n")


def record_machine(reason: str, tolerance) -> None:
    """This machine's digests of every run, once its losses agree with the original recording."""
    existing = json.loads(RESULTS.read_text())
    digests = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = make_shards(Path(tmp))
        for name in RUNS:
            got = run(root, name)
            recorded = existing["runs"][name]
            problem = tolerance(name, got, recorded)
            if problem:
                raise SystemExit(f"{name}: {problem}; not recording this machine")
            digests[name] = got["digests"]
            print(f"{name}: {got['digests']}", flush=True)
    existing.setdefault("digests_by_machine", {})[machine_id()] = {
        "runs": digests, "recorded_at": f"{_commit()} + working tree", "reason": reason}
    RESULTS.write_text(json.dumps(existing, indent=1, sort_keys=True) + "\n")


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    sys.path.insert(0, str(REPO))
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--record", action="store_true", help="run and write tests/data/reference_results.json")
    parser.add_argument("--record-machine", action="store_true",
                        help="add this machine's digests (checked against the recorded losses first)")
    parser.add_argument("--reason", default="first recording", help="why these runs are (re)recorded")
    parser.add_argument("runs", nargs="*", default=list(RUNS))
    args = parser.parse_args()
    if not (args.record or args.record_machine):
        parser.error("pass --record to overwrite the reference results, --record-machine to add this machine's")
    import vton_models  # noqa: F401

    if args.record_machine:
        from test_reference_results import loss_problem

        record_machine(args.reason, loss_problem)
    else:
        record(args.runs, args.reason)
