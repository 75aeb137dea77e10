"""GPU readiness in one command: every family's heaviest stage on one CUDA GPU, then DeepSpeed over NCCL.

Run it as ``bench/gpu_check.sh`` on a machine with an NVIDIA GPU (the project's CI machines have
none). It writes ``bench/results/gpu_check.json`` after every measurement, so a run cut short keeps
what it measured; a measurement that fails is recorded with its error and the others go on.

**What it measures.** For each family, its heaviest training stage (below) in the in-process bare
loop (``GanLoop(cfg, WorkerContext(device=cuda))``: the production trainer, 1 worker, no Ray) with
``train.channels_last=true`` and ``train.cudnn_benchmark=true``, in each of ``precision.mode`` fp32,
bf16 and fp16, at one fixed size for every family (``--size 256x192 --batch 4`` by default, the
papers' working resolution; the stage's shipped config gives everything else: model options,
loss weights, optimizers). Two step times per run: the loop's own ``perf/steady_steps_per_s``
(steps after its first three), and ``step_time_ms``, timed between two CUDA-synchronised points
(before the optimizer step of step ``--warmup`` and of the last step), since the loop's host clock
runs ahead of a GPU that still has queued kernels. The batches are a few real ones from the
stream (synthetic shards of the stage's layout, the representation expanded on the GPU as a GPU
run does), decoded once and cycled, so the figure is the GPU's step time and not the loader's
(``bench/p1_stream.py`` measures that); ``--data stream`` times the live stream instead.
``--baseline`` also runs each precision with both options off, for their speed-up.

**Which stage of each family** (trainable parameters of its networks as the shipped configs build
them at 256x192, from ``vton models summary``; the heaviest stage is the one whose step time
decides the GPU budget):

* ``unet_sa``: ``unet_sa`` (``configs/unet_sa/viton_hd.yaml``), the family's only stage, 39.9 M (G 37.1 M, D 2.8 M).
* ``viton_hd``: ``viton_hd.alias``, 106.0 M (ALIAS generator 100.5 M, multi-scale D 5.5 M); seg 35.9 M, gmm 19.0 M.
* ``cpvton_aux``: ``cpvton_aux.tom``, 31.6 M; gmm 21.8 M.
* ``tree_block``: ``tree_block.joint``, 68.8 M (P 21.4, GMM 19.1, G 25.6, D 2.8); app 28.4 M, parse 24.2 M.
* ``spg_vton``: ``spg_vton.joint``, 109.4 M over nine networks; tryon 85.7 M, sem 23.8 M.

A stage that consumes an earlier stage frozen (alias and tom: the GMM; tree_block.joint: the face
stage) gets that stage's generator freshly built from its own shipped config, attached in-process
as ``tests/test_cpvton_aux.py`` does (``recipe.attach_stage``); no MLflow. Weights are random:
speed does not depend on them. Loss terms that load pretrained networks (VGG, SphereFace) run
when their files are in ``$TORCH_HOME`` (``vton weights prepare``) and are set to 0 otherwise;
the JSON lists the terms it zeroed per stage (they make a step slower, not different in kind).

**DeepSpeed over NCCL.** Then one short Ray Train run (``orchestrator.jobs.launch.fit``, a local
Ray started for it) of the unet_sa stage with ``strategy.name=deepspeed strategy.backend=nccl
ray.use_gpu=true ray.num_workers=1`` on the live shard stream, in a child process with a time
limit (``--deepspeed-timeout``), so a hung NCCL init is reported, not waited on. Its steps/s is the
loop's ``perf/steady_steps_per_s`` from the run's last report. (Under DeepSpeed
``train.channels_last`` makes the inputs NHWC but leaves the trained weights NCHW: see
``orchestrator/train/memory_format.py``.)

Without CUDA it exits at once, before building any data or model, with one line on stderr and
status 6 (``orchestrator.failures.EXIT_CLUSTER``: the machine lacks what the command needs).
``--cpu-smoke --out PATH`` runs the same code on CPU at toy widths and 64x64 (no DeepSpeed), to
check the script itself where no GPU is; its figures mean nothing.

Usage::

    bench/gpu_check.sh [--families unet_sa,viton_hd] [--precisions fp32,bf16,fp16] [--size 256x192]
                       [--batch 4] [--steps 30] [--warmup 5] [--baseline] [--data cached|stream]
                       [--no-deepspeed] [--deepspeed-precision bf16] [--out bench/results/gpu_check.json]
"""

from __future__ import annotations

import argparse
import gc
import importlib.metadata
import itertools
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from orchestrator.failures import EXIT_CLUSTER  # noqa: E402  (json/sys only: the CUDA check stays instant)

DEFAULT_OUT = REPO / "bench" / "results" / "gpu_check.json"
NO_CUDA = ("gpu_check: no CUDA device (torch.cuda.is_available() is False); run this on a machine with an "
           "NVIDIA GPU and a CUDA build of torch (docs/install.md)")


@dataclass(frozen=True)
class Stage:
    """One family's heaviest stage and how to feed it."""

    family: str
    recipe: str
    config: str  # under configs/: its model options, loss weights and optimizers are what runs
    layout: str  # the shard layout its representation reads
    synthetic: str  # the synthetic writer for that layout
    pretrained_terms: tuple[str, ...]  # loss terms that load pretrained networks (zeroed without their files)
    smoke: tuple[str, ...]  # --cpu-smoke: toy widths


STAGES: tuple[Stage, ...] = (
    Stage("unet_sa", "unet_sa", "unet_sa/viton_hd.yaml", "viton_hd", "viton_hd", ("vgg",),
          ("model.ngf=8", "model.ndf=8")),
    Stage("viton_hd", "viton_hd.alias", "viton_hd/alias.yaml", "viton_hd", "viton_hd", ("vgg",),
          ("model.ngf=4", "model.ndf=8", "model.norm_hidden=16", "model.num_upsampling_layers=normal")),
    Stage("cpvton_aux", "cpvton_aux.tom", "cpvton_aux/tom.yaml", "viton", "viton", ("vgg",), ("model.ngf=8",)),
    Stage("tree_block", "tree_block.joint", "tree_block/joint.yaml", "mpv_triplets", "mpv", ("feat", "style"),
          ("model.ngf=8", "model.ndf=8", "model.n_blocks=2")),
    Stage("spg_vton", "spg_vton.joint", "spg_vton/joint.yaml", "mpv_triplets", "mpv", ("p_perc", "t_perc", "id"),
          ("model.ngf=8", "model.ndf=8", "model.gmm_ngf=8")),
)

#: --cpu-smoke widths of the consumed stages attached to the ones above.
SMOKE_CONSUMED: dict[str, tuple[str, ...]] = {
    "viton_hd.gmm": ("model.ngf=8", "model.work_size=[64,64]"),
    "cpvton_aux.gmm": ("model.ngf=8",),
    "tree_block.face": ("model.ngf=8", "model.ndf=8", "model.n_blocks=1", "model.face_size=48"),
}


# --------------------------------------------------------------------------------------- set-up


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="bench/gpu_check.sh", description=__doc__.split("\n\n")[0])
    parser.add_argument("--families", default=",".join(s.family for s in STAGES),
                        help="comma-separated families (default: all five)")
    parser.add_argument("--precisions", default="fp32,bf16,fp16", help="precision.mode values to time")
    parser.add_argument("--size", default="256x192", help="HxW of every stage's images (default 256x192)")
    parser.add_argument("--batch", type=int, default=4, help="micro-batch (data.batch_size)")
    parser.add_argument("--steps", type=int, default=30, help="optimizer steps per measurement")
    parser.add_argument("--warmup", type=int, default=5, help="steps left out of step_time_ms (cuDNN benchmark, allocator)")
    parser.add_argument("--data", choices=("cached", "stream"), default="cached",
                        help="cached: a few decoded batches cycled on the GPU (default); stream: the live shard stream")
    parser.add_argument("--loader-workers", type=int, default=4, help="loader processes with --data stream and for DeepSpeed")
    parser.add_argument("--baseline", action="store_true", help="also time channels_last=false cudnn_benchmark=false")
    parser.add_argument("--no-deepspeed", action="store_true", help="skip the DeepSpeed-over-NCCL Ray Train run")
    parser.add_argument("--deepspeed-precision", default="bf16", choices=("fp32", "bf16", "fp16"))
    parser.add_argument("--deepspeed-steps", type=int, default=20)
    parser.add_argument("--deepspeed-timeout", type=int, default=600, help="seconds before the Ray run is given up")
    parser.add_argument("--zero-stage", type=int, default=0, choices=(0, 1, 2))
    parser.add_argument("--out", type=Path, default=None, help=f"JSON result (default {DEFAULT_OUT.relative_to(REPO)})")
    parser.add_argument("--cpu-smoke", action="store_true",
                        help="run the script's code on CPU at toy widths (needs --out; figures mean nothing)")
    parser.add_argument("--deepspeed-child", type=Path, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--manifest", default="", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.cpu_smoke:
        if args.out is None:
            parser.error("--cpu-smoke needs --out (its figures must not replace bench/results/gpu_check.json)")
        args.size, args.batch, args.steps, args.warmup, args.no_deepspeed = "64x64", 2, 4, 1, True
    if args.steps < args.warmup + 2:
        parser.error(f"--steps {args.steps} must be at least --warmup + 2 ({args.warmup + 2})")
    unknown = set(args.families.split(",")) - {s.family for s in STAGES}
    if unknown:
        parser.error(f"--families: unknown {sorted(unknown)}; known: {', '.join(s.family for s in STAGES)}")
    args.out = args.out or DEFAULT_OUT
    return args


def make_shards(root: Path, stage: Stage, size: tuple[int, int], n: int = 32) -> str:
    """A synthetic set in the stage's layout at the measured size, sharded to ``root`` (file://)."""
    from shards.synthetic import synthesize_layout
    from shards.writer import build_shards

    data = root / stage.layout / "data"
    if not data.exists():
        synthesize_layout(stage.synthetic, data, n=n, size=size, seed=0)
        build_shards(stage.layout, data, "train", f"file://{root}/{stage.layout}/shards", workers=min(4, os.cpu_count() or 1))
    return f"file://{root}/{stage.layout}/shards/manifest.json"


def stage_config(config: str, manifest: str, args: argparse.Namespace, precision: str, fast: bool,
                 extra: Sequence[str] = ()):
    """A shipped stage config at the measured size, one bare worker, no tracking, no evaluation."""
    from orchestrator.config import load_config

    return load_config(REPO / "configs" / config, [
        f"data.manifest={manifest}", "data.val_manifest=", f"data.image_size={args.size}", f"data.batch_size={args.batch}",
        f"data.loader_workers={args.loader_workers if args.data == 'stream' else 0}", "tracking.enabled=false",
        f"precision.mode={precision}", f"train.steps={args.steps}", "train.grad_accum=1", "train.sample_every=0",
        "train.eval_every=0", "train.log_every=100000", "checkpoint.every_n_steps=100000", "train.deterministic=false",
        f"train.channels_last={str(fast).lower()}", f"train.cudnn_benchmark={str(fast).lower()}", "ray.num_workers=1",
        *extra,
    ])


def runnable_config(stage: Stage, manifest: str, args: argparse.Namespace, precision: str, fast: bool,
                    extra: Sequence[str] = ()):
    """``stage_config`` with the pretrained-network loss terms set to 0 when their files are missing;
    returns (config, the terms it zeroed)."""
    from orchestrator.recipes import build_recipe_from_config
    from vton_models.weights import path_of

    extra = (*extra, *(stage.smoke if args.cpu_smoke else ()))
    cfg = stage_config(stage.config, manifest, args, precision, fast, extra)
    missing = [name for name in build_recipe_from_config(cfg).required_weights() if not path_of(name).is_file()]
    if not missing:
        return cfg, []
    zeroed = list(stage.pretrained_terms)
    return stage_config(stage.config, manifest, args, precision, fast,
                        (*extra, *(f"loss.weights.{t}=0" for t in zeroed))), zeroed


# --------------------------------------------------------------------------------------- timing


class CycledBatches:
    """The same few decoded batches again and again (``LoopHooks.train_data``): the step time is the
    GPU's, not the loader's."""

    batches_per_epoch = 1_000_000

    def __init__(self, batches: list[dict]) -> None:
        self.batches = batches

    def iter_from_batches(self, consumed: int):
        return (self.batches[i % len(self.batches)] for i in itertools.count(consumed))


class SyncedClock:
    """``LoopHooks.before_step``: the time before the first optimizer step of step ``first`` and of
    step ``last``, each after draining the device, so the interval holds exactly ``last - first``
    whole steps however far the host ran ahead."""

    def __init__(self, first: int, last: int, sync: Callable[[], None]) -> None:
        self.first, self.last, self.sync = first, last, sync
        self.marks: dict[int, float] = {}

    def __call__(self, network: str, strategy: object, step: int) -> None:
        if step in (self.first, self.last) and step not in self.marks:
            self.sync()
            self.marks[step] = time.perf_counter()

    def step_time_s(self) -> float:
        return (self.marks[self.last] - self.marks[self.first]) / (self.last - self.first)


def cached_batches(cfg, recipe, device, count: int = 4) -> list[dict]:
    """``count`` batches from the real stream (expanded on ``device`` where the representation can)."""
    from orchestrator.train.data import make_train_stream

    stream = make_train_stream(cfg, recipe, 0, 1, str(device))
    batches = stream.iter_from_batches(0)
    return [{k: v for k, v in next(batches).items() if not k.startswith("__")} for _ in range(count)]


def attach_fresh_stages(loop, args: argparse.Namespace, manifest: str, device) -> list[str]:
    """Every stage the recipe consumes, as a freshly built frozen generator from its shipped config."""
    from orchestrator.recipes import build_recipe_from_config
    from orchestrator.train.memory_format import to_memory_format

    attached = []
    for key, consumed in loop.recipe.consumes.items():
        family, _, name = consumed.partition(".")
        smoke = SMOKE_CONSUMED.get(consumed, ()) if args.cpu_smoke else ()
        cfg = stage_config(f"{family}/{name}.yaml", manifest, args, "fp32", False, smoke)
        recipe = build_recipe_from_config(cfg)
        net = to_memory_format(recipe.build_networks()["G"].to(device), loop.cfg.train.channels_last)
        loop.recipe.attach_stage(key, recipe, {"G": net.eval().requires_grad_(False)})
        attached.append(f"{key}={consumed}")
    return attached


def measure(stage: Stage, manifest: str, args: argparse.Namespace, device, precision: str, fast: bool,
            batches: dict[str, list]) -> dict[str, Any]:
    """One run of ``stage`` in ``precision``; its figures (or the error, by the caller)."""
    import torch

    from orchestrator.train.loop import GanLoop, LoopHooks, WorkerContext
    from orchestrator.train.memory_format import is_channels_last

    cfg, zeroed = runnable_config(stage, manifest, args, precision, fast)
    on_gpu = device.type == "cuda"
    clock = SyncedClock(args.warmup, args.steps - 1, torch.cuda.synchronize if on_gpu else (lambda: None))
    loop = GanLoop(cfg, WorkerContext(device=device), LoopHooks(before_step=clock))
    attached = attach_fresh_stages(loop, args, manifest, device)
    if args.data == "cached":
        if "batches" not in batches:  # the same batches for every precision of the stage
            batches["batches"] = cached_batches(cfg, loop.recipe, device)
        loop.hooks.train_data = CycledBatches(batches["batches"])
    if on_gpu:
        torch.cuda.reset_peak_memory_stats(device)
    metrics = loop.run().last_metrics
    step_s = clock.step_time_s()
    networks = {spec.name: loop.strategy.module(spec.name) for spec in loop.recipe.networks}
    out = {
        "ok": True,
        "step_time_ms": round(step_s * 1000, 2),
        "samples_per_s": round(args.batch / step_s, 2),
        "steady_steps_per_s": round(float(metrics["perf/steady_steps_per_s"]), 3),
        "data_wait_ms": round(float(metrics.get("perf/data_wait_s", 0.0)) * 1000, 2),
        "weights_channels_last": all(is_channels_last(n) for n in networks.values()),
        "trainable_parameters_m": round(sum(p.numel() for n in networks.values() for p in n.parameters()
                                            if p.requires_grad) / 1e6, 2),
        "skipped_steps": {k.split("/", 1)[1]: v for k, v in metrics.items() if k.startswith("skipped/") and v},
        "zeroed_terms": zeroed,
        "attached_stages": attached,
    }
    if on_gpu:
        out["peak_memory_gib"] = round(torch.cuda.max_memory_allocated(device) / 2**30, 2)
    return out


# ---------------------------------------------------------------------------------- DeepSpeed


def deepspeed_over_nccl(args: argparse.Namespace, manifest: str) -> dict[str, Any]:
    """In the child process: one Ray Train run of the unet_sa stage on DeepSpeed with NCCL, 1 GPU worker."""
    import ray
    import torch

    from orchestrator.config import validate_environment
    from orchestrator.jobs.launch import fit

    stage = STAGES[0]
    args.data = "stream"  # a real job reads its shards
    cpus = max(2, min(8, (os.cpu_count() or 2) - 2))
    with tempfile.TemporaryDirectory(prefix="vton-gpu-check-ds-") as storage:
        cfg, zeroed = runnable_config(stage, manifest, args, args.deepspeed_precision, True, (
            "strategy.name=deepspeed", "strategy.backend=nccl", f"strategy.zero_stage={args.zero_stage}",
            "ray.use_gpu=true", "ray.num_workers=1", "ray.max_failures=0", f"ray.cpus_per_worker={cpus}", f"ray.threads_per_worker={min(cpus, 4)}",
            f"train.steps={args.deepspeed_steps}", f"checkpoint.storage_path={storage}", "name=gpu-check-deepspeed"))
        validate_environment(cfg, gpus_visible=torch.cuda.device_count())
        ray.init(address="local", num_cpus=cpus + 1, include_dashboard=False)
        try:
            outcome = fit(cfg)
        finally:
            ray.shutdown()
    return {"ok": True, "recipe": stage.recipe, "precision": args.deepspeed_precision, "zero_stage": args.zero_stage,
            "steps": outcome.steps, "steady_steps_per_s": round(float(outcome.metrics["perf/steady_steps_per_s"]), 3),
            "data_wait_ms": round(float(outcome.metrics.get("perf/data_wait_s", 0.0)) * 1000, 2),
            "zeroed_terms": zeroed,
            "note": "under DeepSpeed train.channels_last keeps the trained weights NCHW (inputs NHWC): "
                    "orchestrator/train/memory_format.py"}


def run_deepspeed_child(args: argparse.Namespace, manifest: str) -> dict[str, Any]:
    """The DeepSpeed run in a child process under a time limit; its result or what went wrong."""
    with tempfile.TemporaryDirectory(prefix="vton-gpu-check-") as tmp:
        result = Path(tmp) / "deepspeed.json"
        command = [sys.executable, str(Path(__file__).resolve()), "--deepspeed-child", str(result), "--manifest", manifest,
                   "--size", args.size, "--batch", str(args.batch), "--loader-workers", str(args.loader_workers),
                   "--deepspeed-precision", args.deepspeed_precision, "--deepspeed-steps", str(args.deepspeed_steps),
                   "--zero-stage", str(args.zero_stage), "--warmup", "1", "--steps", str(max(args.deepspeed_steps, 3))]
        started = time.perf_counter()
        try:
            proc = subprocess.run(command, capture_output=True, text=True, timeout=args.deepspeed_timeout)
        except subprocess.TimeoutExpired:
            return {"ok": False, "error": f"timed out after {args.deepspeed_timeout} s (NCCL or Ray start-up hung?)"}
        wall = round(time.perf_counter() - started, 1)
        if result.is_file():
            return {**json.loads(result.read_text()), "wall_s": wall}
        tail = (proc.stderr or proc.stdout or "").strip().splitlines()[-15:]
        return {"ok": False, "error": f"child exited {proc.returncode} without a result", "log_tail": tail, "wall_s": wall}


# ------------------------------------------------------------------------------------- driver


def describe_error(exc: BaseException) -> dict[str, Any]:
    frames = traceback.extract_tb(exc.__traceback__)
    where = f"{Path(frames[-1].filename).name}:{frames[-1].lineno}" if frames else ""
    return {"ok": False, "error": f"{type(exc).__name__}: {str(exc).strip()[:800]}", "where": where}


def environment(device) -> dict[str, Any]:
    import torch

    from orchestrator.provenance import git_commit

    info: dict[str, Any] = {"torch": torch.__version__, "cuda": torch.version.cuda, "python": platform.python_version(),
                            "git_commit": git_commit(), "cpus": os.cpu_count()}
    try:  # the version only: importing DeepSpeed here would set up its accelerator in this process
        info["deepspeed"] = importlib.metadata.version("deepspeed")
    except importlib.metadata.PackageNotFoundError:
        info["deepspeed"] = "not installed"
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        info.update(device=torch.cuda.get_device_name(device), capability=f"{props.major}.{props.minor}",
                    memory_gib=round(props.total_memory / 2**30, 1), cudnn=torch.backends.cudnn.version(),
                    bf16_supported=torch.cuda.is_bf16_supported())
    else:
        info["device"] = "cpu (--cpu-smoke: figures mean nothing)"
    return info


def write(out: Path, payload: dict) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(payload, indent=1) + "\n")
    tmp.replace(out)


def speedups(runs: dict[str, dict], baseline: dict[str, dict]) -> dict[str, float]:
    """Per mode, the baseline's step time over this run's (> 1: faster), where both succeeded."""
    return {mode: round(baseline[mode]["step_time_ms"] / run["step_time_ms"], 2)
            for mode, run in runs.items() if run.get("ok") and baseline.get(mode, {}).get("ok")}


def free(device) -> None:
    import torch

    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def run_stages(args: argparse.Namespace, device, payload: dict, data_root: Path) -> None:
    precisions = args.precisions.split(",")
    size = tuple(int(v) for v in args.size.lower().split("x"))
    for stage in (s for s in STAGES if s.family in args.families.split(",")):
        entry = payload["stages"][stage.family] = {"recipe": stage.recipe, "config": f"configs/{stage.config}"}
        try:
            manifest = make_shards(data_root, stage, size)
        except Exception as exc:  # noqa: BLE001 - one family's data must not stop the others
            entry["error"] = describe_error(exc)
            continue
        batches: dict[str, list] = {}
        variants = [("channels_last", True)] + ([("contiguous", False)] if args.baseline else [])
        for label, fast in variants:
            runs = entry[label] = {}
            for mode in precisions:
                print(f"[gpu_check] {stage.recipe} {mode} {label}", file=sys.stderr, flush=True)
                try:
                    runs[mode] = measure(stage, manifest, args, device, mode, fast, batches)
                except Exception as exc:  # noqa: BLE001 - recorded; the next measurement still runs
                    runs[mode] = describe_error(exc)
                free(device)
                write(args.out, payload)
        fp32 = entry["channels_last"].get("fp32", {})
        entry["speedup_vs_fp32"] = speedups({m: r for m, r in entry["channels_last"].items() if m != "fp32"},
                                            {m: fp32 for m in precisions})
        if args.baseline:
            entry["channels_last_speedup"] = speedups(entry["channels_last"], entry["contiguous"])
        batches.clear()
        free(device)
        write(args.out, payload)


def main(argv: Sequence[str]) -> int:
    args = parse_args(argv)
    import torch  # the only import before the check: a CPU machine answers in seconds

    if not torch.cuda.is_available() and not args.cpu_smoke:
        print(NO_CUDA, file=sys.stderr)
        return EXIT_CLUSTER
    if args.deepspeed_child is not None:
        try:
            result = deepspeed_over_nccl(args, args.manifest)
        except Exception as exc:  # noqa: BLE001 - the parent records it
            result = describe_error(exc)
        args.deepspeed_child.write_text(json.dumps(result))
        return 0
    import vton_models  # noqa: F401  - first, as the tests do (torchvision on CPU-only torch)

    device = torch.device("cuda", 0) if not args.cpu_smoke else torch.device("cpu")
    started = time.perf_counter()
    payload: dict[str, Any] = {
        "environment": environment(device),
        "settings": {"size": args.size, "batch": args.batch, "steps": args.steps, "warmup": args.warmup,
                     "data": args.data, "channels_last": True, "cudnn_benchmark": True, "baseline": args.baseline},
        "stages": {},
    }
    with tempfile.TemporaryDirectory(prefix="vton-gpu-check-data-") as tmp:
        run_stages(args, device, payload, Path(tmp))
        if args.no_deepspeed:
            payload["deepspeed_nccl"] = {"ok": False, "skipped": "--no-deepspeed" if not args.cpu_smoke else "needs CUDA"}
        else:
            print("[gpu_check] DeepSpeed over NCCL, Ray Train, 1 GPU worker", file=sys.stderr, flush=True)
            try:
                manifest = make_shards(Path(tmp), STAGES[0], tuple(int(v) for v in args.size.lower().split("x")))
                payload["deepspeed_nccl"] = run_deepspeed_child(args, manifest)
            except Exception as exc:  # noqa: BLE001
                payload["deepspeed_nccl"] = describe_error(exc)
    payload["wall_s"] = round(time.perf_counter() - started, 1)
    write(args.out, payload)
    print(json.dumps(payload, indent=1))
    failed = [f"{f}/{v}/{m}" for f, e in payload["stages"].items() for v in ("channels_last", "contiguous")
              for m, r in e.get(v, {}).items() if not r.get("ok")]
    failed += [f for f, e in payload["stages"].items() if "error" in e]
    if not payload["deepspeed_nccl"].get("ok") and not payload["deepspeed_nccl"].get("skipped"):
        failed.append("deepspeed_nccl")
    if failed:
        print(f"gpu_check: {len(failed)} measurement(s) failed: {', '.join(failed)} (errors in {args.out})",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
