"""DeepSpeed strategy: one ``deepspeed.initialize`` engine per network, ZeRO 0/1/2.

GAN semantics that DeepSpeed does not give for free, and how this module keeps them:

* **One ``engine.backward`` per engine per micro-step.** The recipes already compute D's real and
  fake terms from ONE D pass and the loop sums them before ``backward``; ZeRO-2 would otherwise keep
  only the last backward's gradients.
* **A phase stepping several networks** (SPG-VTON's G phase: G2, two GMMs and G3 against one loss).
  ``engine.backward(loss)`` owns a backward for ONE engine: it scales, runs ``loss.backward()`` and
  reduces that engine's gradients; its prologue is started by hooks on the engine's *forward
  outputs*. So the phase's loss calls the networks' plain modules, the strategy takes all their
  gradients in one ``torch.autograd.grad``, and hands each engine exactly its own through
  ``engine.backward(sum(p * g))`` (whose gradient w.r.t. ``p`` is ``g``, bit for bit), with the
  engine's prologue hooked on that surrogate as its forward would have. fp16 is refused for such
  phases (preflight): the surrogate's gradients would be formed before each engine's loss scale.
* **G's loss flows through D's plain module, D frozen.** ``module(name)`` returns the engine's
  ``.module``: calling D's *engine* inside G's backward raises at ZeRO 0 ("Direct calls to
  tensor.backward() are not supported") and would run D's reduction hooks at ZeRO 1/2.
* **Accumulation boundaries come from the loop, not from DeepSpeed's counter.** ``accumulate(names,
  boundary)`` sets the engines' boundary explicitly before the micro-step's backward (ZeRO-1/2 decide
  whether to reduce/partition gradients from it during backward), and ``engine.step()`` runs after
  EVERY micro-step as DeepSpeed expects: on non-boundary micro-steps it only advances
  ``micro_steps``, on the boundary (``step(name)``) it reduces, clips and updates.
  ``gradient_accumulation_steps`` is our ``train.grad_accum`` so both counters agree.
* **Loss scaling.** The loop already multiplies each micro-batch loss by ``1/grad_accum`` (same as
  DDP), so ``engine.backward(..., scale_wrt_gas=False)``. With fp16, DeepSpeed's own dynamic loss
  scaler (configured from ``precision.*``) scales the loss and skips overflowing steps; the loop's
  per-network ``GradScaler``s are dropped (``precision.scalers`` emptied) so nothing scales twice.
  DeepSpeed's fp16 keeps one scaler per engine, i.e. per network, as the DDP path does.
* **bf16** uses DeepSpeed's ``torch_autocast`` (fp32 weights, bf16 autocast compute) rather than
  DeepSpeed's ``bf16`` section, which casts the module to bf16: the loop's EMA, evaluation and
  MLflow export all run ``module(G)`` on fp32 inputs and would break on a bf16 module. The math is
  the same as the DDP bf16 path (autocast over fp32 master weights).

Process group: under Ray Train's TorchTrainer ``torch.distributed`` is already initialised; DeepSpeed
is told to reuse it (``init_distributed(auto_mpi_discovery=False)``), so no launcher env vars are
needed. A bare single process (tests, the precision probe) gets a 1-rank gloo group on a free port.

JIT builds: on CPU DeepSpeed always builds ``deepspeed_shm_comm`` once; ``"torch_adam": true`` keeps
``fused_adam`` from being compiled anywhere (on GPUs torch's fused Adam kernel takes its place). The build cache is ``TORCH_EXTENSIONS_DIR`` (torch's own knob),
by default ``<environment>/torch_extensions`` here (``default_extensions_dir``): torch's own default,
``~/.cache/torch_extensions``, is shared by every environment of the machine, and its build files
name the environment's paths, so two environments (a checkout and a CI clone) rebuilt it in turn on
each first DeepSpeed job. `make setup` builds it into the environment once
(``python -m orchestrator.train.strategy.prebuild``); ``VTON_TORCH_EXTENSIONS_DIR`` sets it for
workers (see ``jobs.launch.FORWARDED_ENV``) so a cluster can point it at a persistent volume.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import socket
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import torch
import torch.distributed as dist
from torch import nn

from orchestrator.config import Config, ConfigError, _deep_merge
from orchestrator.train.optim import OptimizerSettings
from orchestrator.train.precision import Precision
from orchestrator.train.strategy.base import StepReport, Strategy
from orchestrator.train.strategy.prebuild import use_environment_extensions_dir
from vton_models.recipe import NetworkSpec

use_environment_extensions_dir()  # before DeepSpeed builds anything in this process

#: Subdirectory of a loop checkpoint directory holding one DeepSpeed checkpoint per network.
DEEPSPEED_DIR = "deepspeed"
#: Fixed tag: a loop checkpoint directory holds exactly one DeepSpeed checkpoint per engine.
TAG = "state"


#: DeepSpeed's own reduce/allgather bucket size (elements) when a config names none.
DEEPSPEED_DEFAULT_BUCKET = 500_000_000


def deepspeed_config(cfg: Config, name: str, settings: OptimizerSettings, on_gpu: bool,
                     networks: tuple[str, ...] = ("G", "D"), parameters: int | None = None) -> dict[str, Any]:
    """The DeepSpeed JSON for network ``name``, generated from OUR config (+ the optional override file).

    Why each entry: ``adam_w_mode`` and ``weight_decay`` from the network's resolved optimizer make
    DeepSpeed's "Adam" the same torch Adam (L2 decay) or AdamW the DDP strategy uses (DeepSpeed's
    default would be AdamW); ``torch_adam`` makes it torch's own optimizer, so no node JIT-compiles
    DeepSpeed's FusedAdam (which needs an nvcc matching torch's CUDA in the image), and on GPUs
    ``fused`` picks torch's single-kernel CUDA implementation instead;
    ``train_micro_batch_size_per_gpu``/``gradient_accumulation_steps`` mirror
    ``data.batch_size``/``train.grad_accum`` so DeepSpeed's batch arithmetic matches ours;
    the reduce and allgather buckets hold at most the network's ``parameters``: ZeRO 1/2 allocate a
    reduce bucket of DeepSpeed's default 5e8 elements (2 GB in fp32) per engine at every micro-step
    whatever the network's size, which cost a 0.3M-parameter GAN ~1.5 s of its ~2 s step on CPU.
    """
    optimizer_params: dict[str, Any] = {
        "lr": settings.lr, "betas": list(settings.betas), "eps": 1e-8,
        "weight_decay": settings.weight_decay, "adam_w_mode": settings.type == "adamw",
    }
    optimizer_params["torch_adam"] = True
    if on_gpu:
        optimizer_params["fused"] = True
    generated: dict[str, Any] = {
        "train_micro_batch_size_per_gpu": cfg.data.batch_size,
        "gradient_accumulation_steps": cfg.train.grad_accum,
        "gradient_clipping": cfg.train.grad_clip,
        "optimizer": {"type": "Adam", "params": optimizer_params},
        "zero_optimization": {"stage": cfg.strategy.zero_stage, **_bucket_sizes(parameters)},
        "steps_per_print": 10**9,  # the loop logs; DeepSpeed's own progress lines are noise
        "wall_clock_breakdown": False,
    }
    if cfg.precision.mode == "fp16":
        generated["fp16"] = {
            "enabled": True,
            "loss_scale": 0,  # 0 = dynamic
            "initial_scale_power": int(round(math.log2(cfg.precision.init_scale))),
            "loss_scale_window": cfg.precision.growth_interval,
            "hysteresis": 1,  # back off on the first overflow, like torch's GradScaler
            "min_loss_scale": 1,
        }
    elif cfg.precision.mode == "bf16":
        generated["torch_autocast"] = {"enabled": True, "dtype": "bfloat16"}
    override = load_override(cfg)
    if _per_network(override, networks):  # "*" first, then the network's own section wins
        return _deep_merge(_deep_merge(generated, override.get("*", {})), override.get(name, {}))
    return _deep_merge(generated, override)


def _bucket_sizes(parameters: int | None) -> dict[str, int]:
    if not parameters or parameters >= DEEPSPEED_DEFAULT_BUCKET:
        return {}
    size = -(-parameters // 64) * 64  # ZeRO wants a multiple of its NCCL start alignment (2)
    return {"reduce_bucket_size": size, "allgather_bucket_size": size}


def _per_network(override: Mapping[str, Any], networks: tuple[str, ...]) -> bool:
    """An override file is either one DeepSpeed config for every network, or sections keyed by
    network name (``{"G": {...}, "D": {...}, "*": {...}}``): G and D often want different settings."""
    return bool(override) and all(isinstance(v, Mapping) for v in override.values()) \
        and set(override) <= {*networks, "*"}


def load_override(cfg: Config) -> dict[str, Any]:
    path = cfg.strategy.deepspeed_config
    if not path:
        return {}
    try:
        data = json.loads(Path(path).expanduser().read_text())
    except FileNotFoundError:
        raise ConfigError(f"strategy.deepspeed_config: file not found: {path}") from None
    except json.JSONDecodeError as exc:
        raise ConfigError(f"strategy.deepspeed_config: {path} is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"strategy.deepspeed_config: {path} must hold a JSON object")
    return data


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _local_rank(device: torch.device) -> int:
    """The GPU index on GPUs; Ray Train's local rank when running under it; else the global rank."""
    if device.type == "cuda" and device.index is not None:
        return device.index
    try:
        import ray.train

        return ray.train.get_context().get_local_rank()
    except Exception:  # not under Ray Train: a bare process or a test's own process group
        return dist.get_rank()


def ensure_process_group(device: torch.device, backend: str = "auto") -> None:
    """Make DeepSpeed reuse Ray Train's process group, or create a 1-rank one for a bare process."""
    import deepspeed

    if backend == "auto":
        backend = "nccl" if device.type == "cuda" else "gloo"
    if not dist.is_initialized():
        dist.init_process_group(backend, init_method=f"tcp://127.0.0.1:{_free_port()}", rank=0, world_size=1)
    # deepspeed.initialize asserts LOCAL_RANK (a launcher variable); derive it from the live group.
    os.environ.setdefault("RANK", str(dist.get_rank()))
    os.environ.setdefault("WORLD_SIZE", str(dist.get_world_size()))
    os.environ.setdefault("LOCAL_RANK", str(_local_rank(device)))
    deepspeed.init_distributed(dist_backend=backend, auto_mpi_discovery=False, verbose=False)


class DeepSpeedStrategy(Strategy):
    """One DeepSpeed engine per network; the loop's interface, DeepSpeed's accumulation and ZeRO."""

    def __init__(self, cfg: Config, nets: Mapping[str, nn.Module], specs: tuple[NetworkSpec, ...],
                 optimizers: Mapping[str, OptimizerSettings], device: torch.device, precision: Precision) -> None:
        import deepspeed

        if cfg.strategy.zero_stage not in (0, 1, 2):
            raise ConfigError(f"strategy.zero_stage: {cfg.strategy.zero_stage} is not supported (0, 1 or 2)")
        self.cfg = cfg
        self.precision = precision
        precision.scalers = {}  # DeepSpeed's loss scaler owns fp16 scaling (see module docstring)
        self.specs = {spec.name: spec for spec in specs}
        ensure_process_group(device, cfg.strategy.backend)
        self._engines: dict[str, Any] = {}
        for name in self.specs:
            engine, _, _, _ = deepspeed.initialize(
                model=nets[name].to(device), model_parameters=[p for p in nets[name].parameters()],
                config=deepspeed_config(cfg, name, optimizers[name], device.type == "cuda", tuple(self.specs),
                                        parameters=sum(p.numel() for p in nets[name].parameters())),
                dist_init_required=False,
            )
            self._engines[name] = engine

    # -- the loop's interface --------------------------------------------------------------------

    def engine(self, name: str):
        return self._engines[name]

    def module(self, name: str) -> nn.Module:
        return self._engines[name].module

    def phase_modules(self, names: Sequence[str]) -> dict[str, nn.Module]:
        if len(names) == 1:
            return {names[0]: self._engines[names[0]]}
        return {name: self._engines[name].module for name in names}  # see "several networks" above

    @contextlib.contextmanager
    def accumulate(self, names: Sequence[str], boundary: bool) -> Iterator[None]:
        for name in names:
            self._engines[name].set_gradient_accumulation_boundary(boundary)
        yield
        if not boundary:
            for name in names:
                self._engines[name].step()  # advances micro_steps only: DeepSpeed expects step() every micro-batch

    def backward(self, names: Sequence[str], loss: torch.Tensor) -> None:
        if len(names) == 1:
            self._engines[names[0]].backward(loss, scale_wrt_gas=False)
            return
        from deepspeed.runtime.utils import register_output_backward_hooks

        params = {name: [p for p in self.module(name).parameters() if p.requires_grad] for name in names}
        flat = [p for name in names for p in params[name]]
        grads = iter(torch.autograd.grad(loss, flat, allow_unused=True))
        for name in names:
            engine = self._engines[name]
            own = [(p, g) for p, g in zip(params[name], grads) if g is not None]
            surrogate = sum((p * g).sum() for p, g in own) if own else loss.new_zeros((), requires_grad=True)
            register_output_backward_hooks(surrogate, preprocess_once_fn=engine._backward_prologue,
                                           preprocess_per_tensor_fn=engine._backward_prologue_per_tensor)
            engine.backward(surrogate, scale_wrt_gas=False)

    def step(self, name: str) -> StepReport:
        engine = self._engines[name]
        if not engine.is_gradient_accumulation_boundary():
            raise RuntimeError(f"DeepSpeedStrategy.step('{name}') outside an accumulation boundary: the last "
                               f"micro-step must run under accumulate('{name}', boundary=True)")
        own_norm = self._local_grad_norm(name) if engine.zero_optimization_stage() == 0 else None
        engine.step()
        norm = engine.get_global_grad_norm()
        if norm is None:
            norm = own_norm if own_norm is not None else float("nan")
        return StepReport(stepped=bool(engine.was_step_applied()), grad_norm=float(norm))  # DeepSpeed reads them on the host

    def _local_grad_norm(self, name: str) -> float | None:
        """At ZeRO 0 (fp32/autocast) DeepSpeed only computes the norm when clipping; after the
        boundary all-reduce every rank holds the averaged gradients, so compute it like DDP does."""
        grads = [p.grad.detach().float() for p in self.module(name).parameters() if p.grad is not None]
        if not grads:
            return None
        return float(torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads])))

    def optimizer(self, name: str) -> torch.optim.Optimizer:
        return self._engines[name].optimizer

    def set_lr(self, name: str, lr: float) -> None:
        for group in self._engines[name].optimizer.param_groups:
            group["lr"] = lr

    # -- checkpoints: DeepSpeed's own, collective on every rank ----------------------------------

    def state_dict(self) -> dict:
        """Only a marker: weights and optimizer state live in DeepSpeed's files (``save_to``)."""
        return {"deepspeed": {"zero_stage": self.cfg.strategy.zero_stage, "tag": TAG,
                              "networks": sorted(self._engines)}}

    def load_state_dict(self, state: dict) -> None:
        if "deepspeed" not in state:
            raise ValueError("this checkpoint was written by the DDP strategy; strategy.name=deepspeed restores "
                             "only DeepSpeed checkpoints (train with strategy.name=ddp to resume it)")

    def save_to(self, directory: Path, rank: int) -> None:
        """EVERY rank must call this: ZeRO's save is collective and each rank writes its partition."""
        for name, engine in self._engines.items():
            engine.save_checkpoint(str(directory / DEEPSPEED_DIR / name), tag=TAG, save_latest=True)

    def load_from(self, directory: Path, rank: int) -> None:
        for name, engine in self._engines.items():
            path, _ = engine.load_checkpoint(str(directory / DEEPSPEED_DIR / name), tag=TAG,
                                             load_optimizer_states=True, load_lr_scheduler_states=True)
            if path is None:
                raise FileNotFoundError(f"checkpoint {directory}: no DeepSpeed checkpoint for network '{name}' "
                                        f"under {directory / DEEPSPEED_DIR / name}")
