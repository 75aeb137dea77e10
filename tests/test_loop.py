"""The GAN loop without Ray: DDP and accumulation equivalence, fp16 scalers, bit-exact resume.

Batches come from the real synthetic shards (decoded once); ``FixedBatches`` hands the same
samples to each configuration so that only the parallelism/accumulation differs.

Tolerance for the equivalence checks: fp32, deterministic algorithms, 3 optimizer steps: every
parameter agrees to atol 2e-6 (measured: 2.8e-7; gloo's all-reduce and a 2b-sample mean add in a
different order). These checks run with ``model.attention=false``: self-attention starts with
gamma = 0, so its query/key/value gradients are exactly zero at step 1 and then tiny, and its key
bias never changes the softmax at all (gradient = rounding noise). Adam divides every gradient by
its own running magnitude, turning those ulp-sized differences into +-lr updates (measured up to
1.5x the update for key.bias), which says nothing about parallelism. Step-1 gradients agree to
~1e-6 relative with attention on as well.
"""

from __future__ import annotations

import copy
import math
import shutil
import socket
from pathlib import Path

import pytest
from plugins.data import local_shards
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from orchestrator.config import Config, load_config
from orchestrator.train.loop import GanLoop, LoopHooks, WorkerContext

REPO = Path(__file__).resolve().parents[1]
B = 2  # per-worker micro-batch
STEPS = 3
ATOL = 2e-6


class FixedBatches:
    """Rank ``rank``'s share of every full batch of 2B samples, cut into ``accum`` micro-batches in
    order: the same samples reach every configuration, only parallelism and accumulation differ."""

    batches_per_epoch = 1000

    def __init__(self, full: list[dict[str, torch.Tensor]], world: int = 1, rank: int = 0, accum: int = 1) -> None:
        self.full, self.world, self.rank, self.accum = full, world, rank, accum

    def iter_from_batches(self, consumed: int):
        parts = self.world * self.accum
        micro = []
        for batch in self.full:
            n = batch["inputs"].shape[0] // parts
            for i in range(self.rank * self.accum, (self.rank + 1) * self.accum):
                micro.append({k: v[i * n:(i + 1) * n] for k, v in batch.items()})
        yield from micro[consumed:]


@pytest.fixture(scope="module")
def shards(tmp_path_factory) -> Path:
    return local_shards(tmp_path_factory.mktemp("loop"), n=24, size=(64, 48), seed=3)


def tiny_config(root: Path, *overrides: str) -> Config:
    return load_config(REPO / "configs" / "unet_sa" / "demo.yaml", [
        f"data.manifest=file://{root}/shards/train/manifest.json", "data.val_manifest=",
        "data.loader_workers=0", "data.augment=false", f"data.batch_size={2 * B}",
        "model.ngf=8", "model.ndf=8", "tracking.enabled=false", "precision.mode=fp32",
        f"train.steps={STEPS}", "train.grad_accum=1", "train.deterministic=true", "train.log_every=1000",
        "train.sample_every=0", "checkpoint.every_n_steps=1000", "model.attention=false",
        # What the tolerance was measured on. With the demo's garment input (cloth_and_mask), 3 Adam steps
        # put 2e-4 (one lr) between DDP and one worker on a few entries of G.up.0: Adam's sign of a
        # rounding-sized gradient, as with attention above, not a parallelism difference.
        "train.lr_g=2e-4", "train.lr_d=1e-4", "model.garment_input=none",
        *overrides,
    ])


@pytest.fixture(scope="module")
def full_batches(shards) -> list[dict[str, torch.Tensor]]:
    from shards.stream import ShardStream, StreamPosition
    from orchestrator.train.data import _stream_config
    from orchestrator.recipes import build_recipe_from_config

    cfg = tiny_config(shards)
    stream = ShardStream(_stream_config(cfg, build_recipe_from_config(cfg), cfg.data.manifest, train=True), 0, 1)
    it = iter(stream.iter_from(StreamPosition(0, 0)))
    return [{k: v for k, v in next(it).items() if not k.startswith("__")} for _ in range(STEPS)]


def _params(loop: GanLoop) -> dict[str, torch.Tensor]:
    out = {}
    for spec in loop.recipe.networks:
        for key, value in loop.strategy.module(spec.name).state_dict().items():
            out[f"{spec.name}.{key}"] = value.detach().clone()
    return out


def twin_config(root: Path, *overrides: str) -> Config:
    """The test family (tests/twin_family.py) on the same shards and sizes as ``tiny_config``."""
    from twin_family import registered

    registered()
    return load_config(None, [
        "model.recipe=twin_test", f"data.manifest=file://{root}/shards/train/manifest.json", "data.val_manifest=",
        "data.loader_workers=0", "data.augment=false", "data.image_size=64x48", f"data.batch_size={2 * B}",
        "tracking.enabled=false", "precision.mode=fp32", f"train.steps={STEPS}", "train.grad_accum=1",
        "train.deterministic=true", "train.log_every=1000", "train.sample_every=0", "train.lr_plateau_patience=0",
        "checkpoint.every_n_steps=1000", *overrides,
    ])


CONFIGS = {"unet_sa": tiny_config, "twin_test": twin_config}


def _run(cfg: Config, data, rank: int = 0, world: int = 1, hooks: LoopHooks | None = None,
         restore: Path | None = None, report=None) -> GanLoop:
    hooks = hooks or LoopHooks()
    hooks.train_data = data
    ctx = WorkerContext(rank=rank, world_size=world, restore_dir=restore,
                        report=report or (lambda metrics, directory: None))
    loop = GanLoop(cfg, ctx, hooks)
    loop.run()
    return loop


def _ddp_worker(rank: int, port: int, cfg_dict: dict, batches: list, out: str) -> None:
    from orchestrator.config import config_from_dict
    from twin_family import registered

    registered()  # a spawned process starts with the registry of the project's families only
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    try:
        cfg = config_from_dict(cfg_dict)
        loop = _run(cfg, FixedBatches(batches, world=2, rank=rank, accum=cfg.train.grad_accum), rank=rank, world=2)
        torch.save(_params(loop), out.replace("rank0", f"rank{rank}"))
    finally:
        dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _assert_close(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    diffs = {k: (a[k].float() - b[k].float()).abs().max().item() for k in a}
    worst = max(diffs, key=diffs.get)
    assert diffs[worst] <= ATOL, f"largest parameter difference {diffs[worst]:.3g} > {ATOL} ({worst})"


@pytest.mark.parametrize("recipe, accum", [("unet_sa", 1), ("twin_test", 2)])
def test_two_ddp_workers_equal_one_worker_with_double_batch(shards, full_batches, tmp_path, recipe, accum):
    """``twin_test``: two generators stepped by one phase (one on AdamW with weight decay and linear
    decay) against two discriminators, with gradient accumulation 2 on each of the two workers."""
    config = CONFIGS[recipe]
    single = _params(_run(config(shards), FixedBatches(full_batches)))
    cfg = config(shards, f"data.batch_size={B // accum}", f"train.grad_accum={accum}")
    out = tmp_path / "rank0.pt"
    mp.spawn(_ddp_worker, args=(_free_port(), cfg.to_dict(), full_batches, str(out)), nprocs=2, join=True)
    ddp = torch.load(out)
    _assert_close(ddp, single)
    other = torch.load(tmp_path / "rank1.pt")  # parameters *and buffers* (spectral-norm u, v) agree bit for bit,
    assert all(torch.equal(ddp[k], other[k]) for k in ddp)  # with no per-forward buffer broadcast
    assert any(k.endswith("weight_u") or k.endswith("_u") for k in ddp), "expected spectral-norm buffers in D"
    initial = _params(GanLoop(config(shards), WorkerContext()))
    moved = {k.split(".")[0] for k in ddp if (ddp[k].float() - initial[k].float()).abs().max() > 1e-4}
    assert moved == {s.name for s in GanLoop(config(shards), WorkerContext()).recipe.networks}, \
        f"only {sorted(moved)} changed in training"


def test_grad_accum_two_equals_double_batch(shards, full_batches):
    single = _params(_run(tiny_config(shards), FixedBatches(full_batches)))
    accum = _params(_run(tiny_config(shards, f"data.batch_size={B}", "train.grad_accum=2"),
                         FixedBatches(full_batches, accum=2)))
    _assert_close(accum, single)


def _fp16_trace(cfg: Config, batches, poison_g_at: int | None) -> tuple[GanLoop, dict]:
    """Parameters and scale of each network just before each of its optimizer steps."""
    trace: dict[tuple[str, int], dict] = {}

    def before_step(name: str, strategy, step: int) -> None:
        if name == "G" and step == poison_g_at:  # poison exactly G's gradients of this step
            next(p for p in strategy.module("G").parameters() if p.grad is not None).grad.view(-1)[0] = float("inf")
        trace[(name, step)] = {"params": copy.deepcopy(strategy.module(name).state_dict()),
                               "scale": strategy.precision.scale_value(name)}

    loop = _run(cfg, FixedBatches(batches), hooks=LoopHooks(before_step=before_step))
    return loop, trace


def _stepped(trace: dict, name: str, step: int) -> bool:
    before, after = trace[(name, step)]["params"], trace[(name, step + 1)]["params"]
    return any(not torch.equal(before[k], after[k]) for k in before)


def test_fp16_one_scaler_per_network_and_inf_skips_only_that_network(shards, full_batches):
    # A modest initial scale, so no overflow happens on its own in these few steps.
    cfg = tiny_config(shards, "precision.mode=fp16", "precision.init_scale=1024", "train.steps=3")
    reference, clean = _fp16_trace(cfg, full_batches, poison_g_at=None)
    loop, poisoned = _fp16_trace(cfg, full_batches, poison_g_at=1)
    assert set(loop.precision.scalers) == {"G", "D"}
    assert loop.precision.scalers["G"] is not loop.precision.scalers["D"]
    # Without poison every network steps at every step and keeps its scale.
    assert all(_stepped(clean, n, s) for n in ("G", "D") for s in (0, 1))
    assert reference.precision.scale_value("G") == reference.precision.scale_value("D") == 1024.0
    # With G's step-1 gradients poisoned: G skips exactly step 1 and halves its scale once ...
    assert [_stepped(poisoned, "G", s) for s in (0, 1)] == [True, False]
    assert poisoned[("G", 2)]["scale"] == 512.0 and loop.precision.scale_value("G") == 512.0
    # ... and D steps every time with its scale untouched.
    assert all(_stepped(poisoned, "D", s) for s in (0, 1))
    assert loop.precision.scale_value("D") == 1024.0
    # D's step 1 comes before G's poisoned step in that iteration: identical to the clean run.
    assert all(torch.equal(clean[("D", 1)]["params"][k], poisoned[("D", 1)]["params"][k])
               for k in clean[("D", 1)]["params"])


def test_resume_from_checkpoint_is_bit_exact(shards, full_batches, tmp_path):
    cfg = tiny_config(shards, "checkpoint.every_n_steps=1")
    saved: dict[int, Path] = {}

    def keep(metrics, directory):
        if directory is not None:
            target = tmp_path / f"step{int(metrics['step'])}"
            shutil.copytree(directory, target)
            saved[int(metrics["step"])] = target

    uninterrupted = _params(_run(cfg, FixedBatches(full_batches), report=keep))
    assert sorted(saved) == [1, 2, 3]
    resumed_loop = _run(cfg, FixedBatches(full_batches), restore=saved[1])
    assert resumed_loop.position.step == STEPS
    for key, value in uninterrupted.items():
        assert torch.equal(value, _params(resumed_loop)[key]), f"{key} differs after resume"


def test_preflight_rejects_bad_runs_before_any_worker(shards):
    from orchestrator.config import ConfigError
    from orchestrator.jobs.preflight import preflight

    manifest = f"data.manifest=file://{shards}/shards/train/manifest.json"
    with pytest.raises(ConfigError, match=r"unknown recipe 'pix2pix'; allowed: \[.*'unet_sa'"):
        preflight(load_config(None, ["model.recipe=pix2pix", manifest]), where=0)
    with pytest.raises(ConfigError, match="model: unknown option"):
        preflight(load_config(None, ["model.recipe=unet_sa", "model.widht=3", manifest]), where=0)
    with pytest.raises(ConfigError, match="deepspeed"):
        preflight(tiny_config(shards, "strategy.name=deepspeed", "precision.mode=fp16"), where=0)
    with pytest.raises(ConfigError, match="ray.use_gpu"):
        preflight(tiny_config(shards, "ray.use_gpu=true"), where=0)
    with pytest.raises(ConfigError, match="ray.num_workers"):
        tiny_config(shards, "ray.num_workers=0")
    with pytest.raises(ConfigError, match=r"data.representation_on: representation 'viton_hd' has no device-side"):
        preflight(tiny_config(shards, "data.representation=viton_hd", "data.representation_on=consumer"),
                  where=0)


def test_representation_built_by_the_trainer_trains_like_the_loader_built_one(shards):
    """data.representation_on=consumer through the real stream: the trainer expands uint8 batches
    on its device; the batches are bit-identical, so are the weights (deterministic fp32)."""
    from orchestrator.train.data import representation_placement

    cfg = tiny_config(shards)
    assert representation_placement(cfg, "unet_sa", "cpu") == "loader"
    assert representation_placement(cfg, "unet_sa", "cuda:0") == "consumer"
    assert representation_placement(cfg, "viton_hd", "cuda:0") == "loader"
    assert representation_placement(tiny_config(shards, "data.representation_on=consumer"), "unet_sa", "cpu") == "consumer"
    loader = _params(_run(tiny_config(shards, "data.representation_on=loader"), None))
    consumer = _params(_run(tiny_config(shards, "data.representation_on=consumer"), None))
    assert all(torch.equal(consumer[k], loader[k]) for k in loader)


def test_channels_last_trains_like_contiguous_with_nhwc_weights_and_inputs(shards, full_batches):
    """train.channels_last on CPU (legal there, meant for GPU tensor cores): the same losses within
    float rounding (the kernels sum in another order), every network's convolution weights NHWC
    inside the strategy, the recipe's 4-D float inputs NHWC; cudnn_benchmark is a no-op on CPU."""
    from orchestrator.train.memory_format import is_channels_last

    def run(*overrides: str) -> tuple[GanLoop, dict[str, float]]:
        loop = GanLoop(tiny_config(shards, "train.log_every=1", *overrides), WorkerContext(),
                       LoopHooks(train_data=FixedBatches(full_batches)))
        return loop, loop.run().last_metrics

    plain, plain_metrics = run()
    assert torch.are_deterministic_algorithms_enabled()
    nhwc, nhwc_metrics = run("train.channels_last=true", "train.deterministic=false", "train.cudnn_benchmark=true")
    assert not torch.are_deterministic_algorithms_enabled()  # per process: the run before left it on
    losses = sorted(k for k in plain_metrics if k.startswith("loss/"))
    assert losses and losses == sorted(k for k in nhwc_metrics if k.startswith("loss/"))
    for key in losses:
        assert nhwc_metrics[key] == pytest.approx(plain_metrics[key], rel=1e-4, abs=1e-5), key
    for spec in nhwc.recipe.networks:
        assert is_channels_last(nhwc.strategy.module(spec.name)), spec.name
        assert not is_channels_last(plain.strategy.module(spec.name)), spec.name
    fields = [nhwc._last_inputs[name] for name in nhwc.recipe.batch_fields]  # as the batch brought them
    assert fields and all(v.is_contiguous(memory_format=torch.channels_last) for v in fields)
    assert not any(v.is_contiguous() for v in fields if v.shape[1] > 1)  # NHWC indeed (1 channel: both coincide)


def test_preflight_catches_a_channel_mismatch_between_data_and_model(shards):
    from orchestrator.config import ConfigError
    from orchestrator.jobs.preflight import preflight
    from vton_models.families.unet_sa.recipes import UnetSARecipe
    from vton_models.registry import register, unregister

    class WideInputs(UnetSARecipe):
        name = "unet_sa_wide_inputs"
        batch_fields = {**UnetSARecipe.batch_fields, "inputs": 44}

    register(WideInputs)
    try:
        with pytest.raises(ConfigError, match=r"expects 'inputs' with 44 channels, the data gives 41"):
            preflight(tiny_config(shards, f"model.recipe={WideInputs.name}"), where=0)
    finally:
        unregister(WideInputs.name)


def test_no_host_synchronisation_between_log_points(shards, full_batches, monkeypatch):
    """Between two log points nothing reads a tensor on the host: ``.item()``, ``float()``,
    ``.tolist()`` and ``.cpu()`` are patched and counted, outside the log points themselves.

    Excluded: Adam's own step counters. torch keeps ``state["step"]`` on the host (unless the
    optimizer is capturable) precisely so that reading it is no device synchronisation; on a CPU-only
    machine every tensor is a host tensor, so those reads are told apart by identity.
    """
    cfg = twin_config(shards, "train.steps=6", "train.log_every=3", "train.grad_accum=2",
                      "train.d_steps_per_g=2", f"data.batch_size={B // 2}", "train.ema_decay=0.5",
                      "train.grad_clip=5.0")
    loop = GanLoop(cfg, WorkerContext(), LoopHooks(train_data=FixedBatches(full_batches * 4, accum=2)))
    state = {"counting": False, "calls": []}

    def optimizer_steps() -> set[int]:
        return {id(s["step"]) for name in loop.roles for s in loop.strategy.optimizer(name).state.values()
                if "step" in s}

    def counted(method):
        original = getattr(torch.Tensor, method)

        def wrapper(self, *args, **kwargs):
            if state["counting"] and id(self) not in optimizer_steps():
                state["calls"].append((method, tuple(self.shape), loop.position.step))
            return original(self, *args, **kwargs)
        return wrapper

    for method in ("item", "__float__", "tolist", "cpu"):
        monkeypatch.setattr(torch.Tensor, method, counted(method))
    log_point, optimizer_step = loop._log_point, loop._optimizer_step
    logged = []

    def step(batches):
        state["counting"] = True
        return optimizer_step(batches)

    def log():
        state["counting"] = False
        logged.append(loop.position.step)
        return log_point()

    monkeypatch.setattr(loop, "_optimizer_step", step)
    monkeypatch.setattr(loop, "_log_point", log)
    result = loop.run()
    assert logged == [3, 6] and result.steps_run == 6
    assert state["calls"] == [], f"host reads between log points (method, shape, step): {state['calls'][:10]}"
    losses = {k: v for k, v in result.last_metrics.items() if k.startswith("loss/")}
    assert {"loss/G/l1", "loss/G/adv2", "loss/D/d1_real", "loss/D_total", "loss/G_total"} <= set(losses)
    assert all(math.isfinite(v) for v in losses.values())
    assert {"grad_norm/G1", "grad_norm/G2", "grad_norm/D1", "grad_norm/D2", "skipped/G2"} <= set(result.last_metrics)


def test_optimizers_follow_the_recipe_then_the_config(shards):
    """The recipe's per-network optimizer (twin's G2: AdamW, weight decay, linear decay) unless the
    config says otherwise; the role shorthands and per-network keys; errors name the key."""
    from orchestrator.config import ConfigError
    from orchestrator.train.optim import LinearDecay, resolve_optimizers

    loop = GanLoop(twin_config(shards, "train.lr_d=3e-4", "train.betas.D2=[0.0,0.9]"), WorkerContext())
    g1, g2 = (loop.strategy.optimizer(n) for n in ("G1", "G2"))
    assert type(g1) is torch.optim.Adam and type(g2) is torch.optim.AdamW
    assert g2.param_groups[0]["weight_decay"] == 0.05 and g1.param_groups[0]["weight_decay"] == 0.0
    assert g1.param_groups[0]["lr"] == 2e-4 and g2.param_groups[0]["lr"] == 5e-4  # project default, recipe's
    assert all(loop.strategy.lr(d) == 3e-4 for d in ("D1", "D2"))  # train.lr_d: every discriminator
    assert loop.strategy.optimizer("D2").param_groups[0]["betas"] == (0.0, 0.9)
    assert loop.strategy.optimizer("D1").param_groups[0]["betas"] == (0.5, 0.999)
    schedule = loop.schedules["G2"]
    assert isinstance(schedule, LinearDecay)
    assert [round(schedule.before_step(s) / 5e-4, 6) for s in (0, 1, 2, 3, 5, 6, 9)] == \
        [1.0, 1.0, 0.8, 0.6, 0.2, 0.0, 0.0]  # keep 1 step, then to zero over 4 (CP-VTON's lambda)

    settings = resolve_optimizers(twin_config(shards, "train.lr.G2=1e-3", "train.lr_g=7e-4",
                                              "train.weight_decay.G2=0", "train.optimizer=adamw",
                                              "train.schedule.G2=constant"), loop.recipe)
    assert settings["G2"].lr == 1e-3 and settings["G1"].lr == 7e-4  # per network > shorthand > recipe
    assert settings["G2"].weight_decay == 0.0 and settings["G2"].schedule == "constant"
    assert {s.type for s in settings.values()} == {"adamw"}
    with pytest.raises(ConfigError, match=r"train.lr: no network 'G3' in recipe 'twin_test' \(its networks: G1, G2, D1, D2\)"):
        resolve_optimizers(twin_config(shards, "train.lr.G3=1e-3"), loop.recipe)
    with pytest.raises(ConfigError, match=r"train.schedule.D1: plateau needs train.lr_plateau_patience >= 1"):
        resolve_optimizers(twin_config(shards, "train.schedule.D1=plateau"), loop.recipe)


def test_a_recipe_whose_phases_do_not_fit_its_networks_is_refused_at_registration():
    from twin_family import TwinRecipe
    from vton_models.recipe import Phase
    from vton_models.registry import register

    class Idle(TwinRecipe):
        name = "twin_idle"
        phases = (Phase("G", ("G1", "G2"), "g_losses"), Phase("D", ("D1",), "d_losses"))

    class Twice(TwinRecipe):
        name = "twin_twice"
        phases = (Phase("G", ("G1", "G2"), "g_losses"), Phase("D", ("D1", "D2", "G1"), "d_losses"))

    class Typo(TwinRecipe):
        name = "twin_typo"
        phases = (Phase("G", ("G1", "G2"), "g_loss"), Phase("D", ("D1", "D2"), "d_losses"))

    for cls, message in ((Idle, r"\['D2'\] are stepped by no phase"), (Twice, "'G1' is stepped by phases 'G' and 'D'"),
                         (Typo, "names loss method 'g_loss'")):
        with pytest.raises(ValueError, match=message):
            register(cls)


def test_checkpoints_go_to_the_bucket_whenever_one_is_configured(monkeypatch):
    """AWS S3 has no VTON_S3_ENDPOINT: the bucket alone decides (a local path would be refused by Ray
    Train from any worker on another node at the first checkpoint)."""
    from orchestrator.checkpoints.storage import is_node_local, storage_url

    for var in ("VTON_S3_ENDPOINT", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("VTON_BUCKET", "my-vton-bucket")
    assert storage_url(load_config(None)) == "s3://my-vton-bucket/checkpoints"
    assert storage_url(load_config(None, ["checkpoint.storage_path=s3://other/ckpt"])) == "s3://other/ckpt"
    monkeypatch.delenv("VTON_BUCKET")
    assert is_node_local(storage_url(load_config(None)))
    assert not is_node_local("s3://b/p") and is_node_local("file:///x") and is_node_local("/x")


def test_preflight_refuses_what_a_cluster_run_would_fail_on(shards, tmp_path, monkeypatch):
    """Where the run executes: a node-local checkpoint path on a multi-node cluster, GPUs the
    autoscaler cannot reach, pretrained weights the losses need but the node lacks."""
    from orchestrator.config import ConfigError
    from orchestrator.jobs.capacity import Capacity
    from orchestrator.jobs.preflight import preflight

    cluster = Capacity(gpus=0, gpus_reachable=8, nodes=1, nodes_reachable=3, where="the Ray cluster")
    local = tiny_config(shards, f"checkpoint.storage_path={tmp_path}/ckpt")
    with pytest.raises(ConfigError, match=r"checkpoint.storage_path: .* on each node's own disk, and the Ray cluster "
                                          r"has 1 node now, up to 3 with the autoscaler"):
        preflight(local, cluster)
    preflight(tiny_config(shards, f"checkpoint.storage_path={tmp_path}/ckpt", "checkpoint.shared_filesystem=true"),
              cluster)
    preflight(tiny_config(shards, f"checkpoint.storage_path={tmp_path}/ckpt"), where=0)  # one machine: fine
    gpu = ["checkpoint.storage_path=s3://b/c", "ray.use_gpu=true", "strategy.backend=nccl"]
    preflight(tiny_config(shards, *gpu, "ray.num_workers=8"), cluster)  # none up yet, the autoscaler adds 8
    with pytest.raises(ConfigError, match=r"ray.num_workers: 9 GPU workers requested but only 0 GPU\(s\) are up "
                                          r"and the autoscaler can bring at most 8"):
        preflight(tiny_config(shards, *gpu, "ray.num_workers=9"), cluster)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty"))
    with pytest.raises(ConfigError, match=r"loss.weights: recipe 'unet_sa' needs pretrained 'vgg19' weights .*"
                                          r"vton weights prepare"):
        preflight(tiny_config(shards, "loss.weights.vgg=10"), where=0)
    preflight(tiny_config(shards, "loss.weights.vgg=0"), where=0)
    preflight(tiny_config(shards, "loss.weights.vgg=10"), where=None)  # away from the nodes: not checked here


def test_max_failures_defaults_to_retries_on_gpu_clusters():
    from orchestrator.jobs.launch import max_failures

    assert max_failures(load_config(None, ["ray.use_gpu=true"])) == 3  # spot nodes get reclaimed
    assert max_failures(load_config(None)) == 2  # the demo and base configs survive a lost worker
    assert max_failures(load_config(None, ["ray.use_gpu=true", "ray.max_failures=0"])) == 0
