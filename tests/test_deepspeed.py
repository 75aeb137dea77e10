"""strategy.name=deepspeed: ZeRO 0/1/2 vs DDP, bf16, fp16 on CPU, bit-exact resume, ZeRO export.

Everything that needs 2 ranks runs in ONE Ray Train TorchTrainer (2 gloo workers, an in-process
local Ray with 2 CPUs): its training function runs every configuration in turn inside the same two
workers and rank 0 reports the measurements. One job instead of one per configuration keeps the
module at a few minutes on 2 cores (DeepSpeed's engine set-up costs seconds per configuration).

Tolerance: the same as tests/test_loop.py (fp32, deterministic algorithms, 3 optimizer steps,
``model.attention=false`` for the reason given there): every G and D parameter of DeepSpeed agrees
with the DDP strategy's to atol 2e-6 after the same steps from the same init and the same data.
Both all-reduce with gloo and average over ranks, so the observed difference is 0 or rounding.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest
from plugins.data import local_shards
import torch

from orchestrator.config import ConfigError
from test_loop import ATOL, STEPS, B, FixedBatches, tiny_config, twin_config  # noqa: F401  (same sizes)

REPO = Path(__file__).resolve().parents[1]
STAGES = (0, 1, 2)
ACCUMS = (1, 2)
BF16_STEPS = 4


@pytest.fixture(scope="module")
def shards(tmp_path_factory) -> Path:
    return local_shards(tmp_path_factory.mktemp("deepspeed"), n=24, size=(64, 48), seed=3)


@pytest.fixture(scope="module")
def full_batches(shards) -> list[dict[str, torch.Tensor]]:
    from orchestrator.train.data import _stream_config
    from orchestrator.recipes import build_recipe_from_config
    from shards.stream import ShardStream, StreamPosition

    cfg = tiny_config(shards)
    stream = ShardStream(_stream_config(cfg, build_recipe_from_config(cfg), cfg.data.manifest, train=True), 0, 1)
    it = iter(stream.iter_from(StreamPosition(0, 0)))
    return [{k: v for k, v in next(it).items() if not k.startswith("__")} for _ in range(BF16_STEPS)]


# ----------------------------------------------------------------------------------- worker side


def _params(loop) -> dict[str, torch.Tensor]:
    return {f"{spec.name}.{k}": v.detach().float().clone()
            for spec in loop.recipe.networks for k, v in loop.strategy.module(spec.name).state_dict().items()}


def _worst(a: dict, b: dict) -> float:
    assert a.keys() == b.keys()
    return max((a[k] - b[k]).abs().max().item() for k in a)


def _all_worker(config: dict) -> None:
    """Runs on both Ray Train workers; rank 0 reports every measurement in one final report."""
    import ray.train
    import torch.distributed as dist

    from orchestrator.config import config_from_dict
    from orchestrator.train.loop import GanLoop, LoopHooks, WorkerContext
    from orchestrator.recipes import build_recipe_from_config
    from orchestrator.train.optim import resolve_optimizers
    from orchestrator.train.strategy.deepspeed import DeepSpeedStrategy, deepspeed_config
    from orchestrator.checkpoints.zero_export import export_generator

    torch.set_num_threads(1)
    rank, world = ray.train.get_context().get_world_rank(), ray.train.get_context().get_world_size()
    full, base = config["batches"], config["cfg"]
    out: dict = {}
    clock = time.perf_counter()

    def run(overrides: dict, accum: int, restore: Path | None = None, report=None):
        raw = {**base, **{k: {**base[k], **v} for k, v in overrides.items()}}
        raw["train"] = {**raw["train"], "grad_accum": accum}
        raw["data"] = {**raw["data"], "batch_size": base["data"]["batch_size"] // accum}
        cfg = config_from_dict(raw)
        ctx = WorkerContext(rank=rank, world_size=world, restore_dir=restore,
                            report=report or (lambda metrics, directory: None))
        loop = GanLoop(cfg, ctx, LoopHooks(train_data=FixedBatches(full[:cfg.train.steps], world, rank, accum)))
        result = loop.run()
        return loop, result

    # 1. ZeRO 0/1/2 fp32 vs DDP, grad_accum 1 and 2
    initial = _params(GanLoop(config_from_dict(base), WorkerContext(rank=rank, world_size=world)))
    for accum in ACCUMS:
        ddp = _params(run({}, accum)[0])
        out[f"ddp_moved/{accum}"] = _worst(ddp, initial)
        for stage in STAGES:
            loop, _ = run({"strategy": {"name": "deepspeed", "zero_stage": stage}}, accum)
            assert isinstance(loop.strategy, DeepSpeedStrategy)
            out[f"diff/zero{stage}/accum{accum}"] = _worst(_params(loop), ddp)

    # 1b. The test family: two generators stepped by one phase, two discriminators by another,
    #     ZeRO-1 with accumulation 2 vs DDP (the strategy's several-network backward).
    from twin_family import registered

    registered()
    twin = config["twin_cfg"]
    twin_runs = {}
    for name, strategy in (("ddp", {}), ("zero1", {"name": "deepspeed", "zero_stage": 1})):
        raw = {**twin, "strategy": {**twin["strategy"], **strategy}, "train": {**twin["train"], "grad_accum": 2},
               "data": {**twin["data"], "batch_size": twin["data"]["batch_size"] // 2}}
        loop = GanLoop(config_from_dict(raw), WorkerContext(rank=rank, world_size=world),
                       LoopHooks(train_data=FixedBatches(full[:STEPS], world, rank, 2)))
        loop.run()
        twin_runs[name] = _params(loop)
    initial = _params(GanLoop(config_from_dict(twin), WorkerContext(rank=rank, world_size=world)))
    out["twin/moved"] = sorted({k.split(".")[0] for k in initial
                                if (twin_runs["ddp"][k] - initial[k]).abs().max() > 1e-4})
    out["twin/diff/zero1/accum2"] = _worst(twin_runs["zero1"], twin_runs["ddp"])

    out["seconds/2"] = time.perf_counter() - clock
    clock = time.perf_counter()
    # 2. resume from a DeepSpeed checkpoint (ZeRO 2, grad_accum 2): bit-exact; export == module(G)
    shared = Path(config["scratch"])
    saved: dict[int, Path] = {}

    def keep(metrics, directory):  # what Ray Train does: every rank's directory merged into one
        target = shared / f"step{int(metrics['step'])}"
        shutil.copytree(directory, target, dirs_exist_ok=True)
        saved[int(metrics["step"])] = target
        dist.barrier()

    resume_cfg = {"strategy": {"name": "deepspeed", "zero_stage": 2}, "checkpoint": {"every_n_steps": 1}}
    uninterrupted_loop, _ = run(resume_cfg, 2, report=keep)
    uninterrupted = _params(uninterrupted_loop)
    out["saved_steps"] = sorted(saved)
    resumed_loop, resumed = run(resume_cfg, 2, restore=saved[1])
    out["resumed_steps_run"] = resumed.steps_run
    out["resume_bit_exact"] = all(torch.equal(uninterrupted[k], v) for k, v in _params(resumed_loop).items())
    exported = export_generator(saved[STEPS])
    module_g = uninterrupted_loop.strategy.module("G").state_dict()
    out["export_keys_match"] = set(exported) == set(module_g)
    out["export_diff"] = max((exported[k].float() - module_g[k].float()).abs().max().item() for k in module_g)
    out["ckpt_files"] = sorted(str(p.relative_to(saved[STEPS])) for p in saved[STEPS].rglob("*") if p.is_file())

    out["seconds/3"] = time.perf_counter() - clock
    clock = time.perf_counter()
    # 3. bf16 (DeepSpeed torch_autocast) at ZeRO 1: runs and learns on held-out data
    _, bf16 = run({"strategy": {"name": "deepspeed", "zero_stage": 1}, "precision": {"mode": "bf16"},
                   "data": {"val_manifest": config["val_manifest"]},
                   "train": {"steps": BF16_STEPS, "lr_g": 2e-3, "eval_every": 0, "eval_batches": 1}}, 1)
    out["bf16_val_l1"] = (bf16.val_before["val/l1"], bf16.val_after["val/l1"])

    out["seconds/4"] = time.perf_counter() - clock
    clock = time.perf_counter()
    # 4. fp16: our generated config is a valid DeepSpeed config; the CPU engine refuses it
    from deepspeed.runtime.config import DeepSpeedConfig

    fp16_cfg = config_from_dict({**base, "strategy": {**base["strategy"], "name": "deepspeed", "zero_stage": 2},
                                 "precision": {"mode": "fp16", "init_scale": 1024, "growth_interval": 50}})
    settings = resolve_optimizers(fp16_cfg, build_recipe_from_config(fp16_cfg))["G"]
    parsed = DeepSpeedConfig(deepspeed_config(fp16_cfg, "G", settings, on_gpu=False))
    fp16 = parsed.float16_config
    out["fp16_parsed"] = (fp16.enabled, fp16.initial_dynamic_scale(), fp16.dynamic_loss_scale_args())
    from deepspeed.accelerator import get_accelerator

    out["fp16_cpu_supported"] = bool(get_accelerator().is_fp16_supported())  # mkldnn fp16: AVX512-FP16 / AMX
    try:
        GanLoop(fp16_cfg, WorkerContext(rank=rank, world_size=world))
        out["fp16_cpu_error"] = None
    except ValueError as exc:
        out["fp16_cpu_error"] = str(exc)
    if rank == 0:  # a file, not ray.train.report: Result.metrics is None unless a checkpoint comes with it
        torch.save(out, Path(config["scratch"]) / "measured.pt")
    ray.train.report({})


# ----------------------------------------------------------------------------------- driver side


@pytest.fixture(scope="module")
def measured(shards, full_batches, tmp_path_factory) -> dict:
    import ray
    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchConfig, TorchTrainer

    cfg = tiny_config(shards, f"data.batch_size={B}", "ray.num_workers=2")
    scratch = tmp_path_factory.mktemp("ds-ckpt")
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=True,
             runtime_env={"env_vars": {"PYTHONPATH": f"{REPO}:{REPO / 'tests'}", "OMP_NUM_THREADS": "1"}})
    try:
        trainer = TorchTrainer(
            _all_worker,
            train_loop_config={"cfg": cfg.to_dict(), "batches": full_batches, "scratch": str(scratch),
                               "twin_cfg": twin_config(shards, f"data.batch_size={B}", "ray.num_workers=2").to_dict(),
                               "val_manifest": f"file://{shards}/shards/test/manifest.json"},
            torch_config=TorchConfig(backend="gloo"),
            scaling_config=ScalingConfig(num_workers=2, resources_per_worker={"CPU": 1}),
            run_config=RunConfig(name="deepspeed-tests", storage_path=str(tmp_path_factory.mktemp("ray"))),
        )
        result = trainer.fit()
    finally:
        ray.shutdown()
    assert result.error is None, result.error
    out = torch.load(scratch / "measured.pt", weights_only=False)
    print("\n[deepspeed measurements]", {k: v for k, v in out.items() if k != "ckpt_files"})
    return out


@pytest.mark.slow  # all share one ~100 s Ray Train job (the measured fixture)
@pytest.mark.parametrize("stage", STAGES)
@pytest.mark.parametrize("accum", ACCUMS)
def test_zero_stage_matches_ddp_on_two_ray_workers(measured, stage, accum):
    assert measured[f"ddp_moved/{accum}"] > 1e-4, "training did not change the weights"
    diff = measured[f"diff/zero{stage}/accum{accum}"]
    assert diff <= ATOL, f"ZeRO-{stage} grad_accum {accum}: largest parameter difference vs DDP {diff:.3g} > {ATOL}"


@pytest.mark.slow  # all share one ~100 s Ray Train job (the measured fixture)
def test_two_generators_in_one_phase_train_under_zero1_with_accumulation_as_under_ddp(measured):
    """tests/twin_family.py: G1 and G2 stepped by one phase (G2 on AdamW with weight decay and a
    linear decay), D1 and D2 by another; 2 Ray workers, grad_accum 2, ZeRO-1 == DDP."""
    assert measured["twin/moved"] == ["D1", "D2", "G1", "G2"], "every network must train"
    diff = measured["twin/diff/zero1/accum2"]
    assert diff <= ATOL, f"ZeRO-1: largest parameter difference vs DDP {diff:.3g} > {ATOL}"


@pytest.mark.slow  # all share one ~100 s Ray Train job (the measured fixture)
def test_resume_from_deepspeed_checkpoint_is_bit_exact(measured):
    assert measured["saved_steps"] == [1, 2, 3]
    assert measured["resumed_steps_run"] == STEPS - 1
    assert measured["resume_bit_exact"]
    files = measured["ckpt_files"]  # both ranks' ZeRO partitions for both engines, beside the loop's files
    for name in ("G", "D"):
        assert f"deepspeed/{name}/state/mp_rank_00_model_states.pt" in files
        for rank in (0, 1):
            assert f"deepspeed/{name}/state/zero_pp_rank_{rank}_mp_rank_00_optim_states.pt" in files
    assert {"meta.json", "state.pt", "rng_rank0.pt", "rng_rank1.pt"} <= set(files)


@pytest.mark.slow  # all share one ~100 s Ray Train job (the measured fixture)
def test_export_generator_from_zero2_checkpoint_equals_the_trained_module(measured):
    assert measured["export_keys_match"]
    assert measured["export_diff"] == 0.0


@pytest.mark.slow  # all share one ~100 s Ray Train job (the measured fixture)
def test_bf16_runs_and_learns(measured):
    before, after = measured["bf16_val_l1"]
    assert after < before, f"held-out L1 did not improve in bf16: {before:.4f} -> {after:.4f}"


@pytest.mark.slow  # all share one ~100 s Ray Train job (the measured fixture)
def test_fp16_config_is_built_and_cpu_refusal_is_real(measured):
    enabled, initial_scale, dynamic = measured["fp16_parsed"]
    assert enabled and initial_scale == 1024.0
    assert dynamic["scale_window"] == 50 and dynamic["min_scale"] == 1
    # DeepSpeed's CPU accelerator takes fp16 exactly where oneDNN has fp16 kernels (AVX512-FP16 / AMX
    # CPUs) and refuses it elsewhere; preflight refuses DeepSpeed fp16 on CPU either way.
    if measured["fp16_cpu_supported"]:
        assert measured["fp16_cpu_error"] is None
    else:
        assert "fp16 is not supported on your device" in measured["fp16_cpu_error"]


def test_preflight_deepspeed_checks(shards, tmp_path):
    from orchestrator.jobs.preflight import preflight

    preflight(tiny_config(shards, "strategy.name=deepspeed", "strategy.zero_stage=2", "precision.mode=bf16"),
              where=0)
    with pytest.raises(ConfigError, match=r"precision.mode: 'fp16' with strategy.name=deepspeed needs GPUs"):
        preflight(tiny_config(shards, "strategy.name=deepspeed", "precision.mode=fp16"), where=0)
    with pytest.raises(ConfigError, match=r"loss.weights.gp: 1.0 .*not supported with strategy.name=deepspeed"):
        preflight(tiny_config(shards, "strategy.name=deepspeed", "loss.weights.gp=1.0"), where=0)
    bad = tmp_path / "ds.json"
    bad.write_text("{not json")
    with pytest.raises(ConfigError, match="strategy.deepspeed_config: .* is not valid JSON"):
        preflight(tiny_config(shards, "strategy.name=deepspeed", f"strategy.deepspeed_config={bad}"), where=0)
    with pytest.raises(ConfigError, match="strategy.zero_stage"):
        tiny_config(shards, "strategy.name=deepspeed", "strategy.zero_stage=3")


def test_override_file_is_deep_merged_per_network(shards, tmp_path):
    from orchestrator.recipes import build_recipe_from_config
    from orchestrator.train.optim import resolve_optimizers
    from orchestrator.train.strategy.deepspeed import deepspeed_config

    override = tmp_path / "ds.json"
    override.write_text('{"D": {"optimizer": {"params": {"eps": 1e-6}}}, "*": {"steps_per_print": 5}}')
    cfg = tiny_config(shards, "strategy.name=deepspeed", f"strategy.deepspeed_config={override}",
                      "train.lr_g=3e-4", "train.lr_d=7e-5", "train.grad_clip=1.5", "train.grad_accum=2")
    settings = resolve_optimizers(cfg, build_recipe_from_config(cfg))
    g, d = (deepspeed_config(cfg, n, settings[n], on_gpu=False) for n in ("G", "D"))
    assert g["optimizer"]["params"]["lr"] == 3e-4 and d["optimizer"]["params"]["lr"] == 7e-5
    assert d["optimizer"]["params"]["eps"] == 1e-6 and d["optimizer"]["params"]["torch_adam"] is True
    assert g["optimizer"]["params"]["eps"] == 1e-8 and g["steps_per_print"] == 5
    assert g["gradient_clipping"] == 1.5 and g["gradient_accumulation_steps"] == 2
    assert g["train_micro_batch_size_per_gpu"] == cfg.data.batch_size
    on_gpu = deepspeed_config(cfg, "G", settings["G"], on_gpu=True)["optimizer"]["params"]
    assert on_gpu["torch_adam"] is True and on_gpu["fused"] is True  # torch's fused CUDA Adam: no JIT build
    assert "fused" not in g["optimizer"]["params"]
    # ZeRO's buckets hold at most the network (DeepSpeed's default is 5e8 elements whatever its size),
    # rounded up to ZeRO's alignment; a network past the default keeps it; an override file wins.
    sized = deepspeed_config(cfg, "G", settings["G"], on_gpu=False, parameters=1000)["zero_optimization"]
    assert sized["reduce_bucket_size"] == sized["allgather_bucket_size"] == 1024
    huge = deepspeed_config(cfg, "G", settings["G"], on_gpu=False, parameters=10**9)["zero_optimization"]
    assert "reduce_bucket_size" not in huge
    override.write_text('{"zero_optimization": {"reduce_bucket_size": 4096}}')
    assert deepspeed_config(cfg, "G", settings["G"], on_gpu=False, parameters=1000)["zero_optimization"] == {
        "stage": 0, "reduce_bucket_size": 4096, "allgather_bucket_size": 1024}


def test_the_cpu_comm_op_is_built_at_install_and_only_loaded_by_jobs(tmp_path):
    """DeepSpeed's CPU op was JIT-built in the first job (a minute) although a build sat in
    ~/.cache/torch_extensions: that cache is shared by every environment and names their paths, so a
    checkout and a CI clone rebuilt it in turn. `make setup` builds it into the environment, and a
    Ray worker of the environment (where jobs run) only loads it."""
    import subprocess
    import sys

    from orchestrator.train.strategy.prebuild import default_extensions_dir

    built = default_extensions_dir() / "deepspeed_shm_comm" / "deepspeed_shm_comm.so"
    assert built.is_file(), f"{built}: `make setup` did not build it"
    before = built.stat().st_mtime_ns
    script = tmp_path / "load_in_a_ray_worker.py"
    script.write_text(
        "import os, ray\n"
        "ray.init(include_dashboard=False, num_cpus=1)\n"
        "@ray.remote\n"
        "def load():\n"
        "    import orchestrator.train.strategy.deepspeed\n"
        "    from deepspeed.accelerator import get_accelerator\n"
        "    get_accelerator().create_op_builder('ShareMemCommBuilder').load(verbose=False)\n"
        "    return os.environ['TORCH_EXTENSIONS_DIR']\n"
        "print('DIR', ray.get(load.remote()))\n")
    env = {k: v for k, v in os.environ.items() if k not in ("TORCH_EXTENSIONS_DIR", "RAY_ADDRESS")}
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300, env=env,
                         cwd=Path(__file__).resolve().parents[1])
    assert out.returncode == 0, out.stderr[-2000:]
    assert f"DIR {default_extensions_dir()}" in out.stdout
    assert built.stat().st_mtime_ns == before, "the worker rebuilt the op"
