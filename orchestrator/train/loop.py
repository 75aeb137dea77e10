"""The per-worker GAN loop: one loop for every recipe, DDP or DeepSpeed, any precision.

Per optimizer step (StyleGAN3's training_loop.py is the model): ``d_steps_per_g`` rounds of
``grad_accum`` micro-batches; in every round D's loss is accumulated, and in the last round G's
loss too, per micro-batch, D frozen while G's loss flows through it. The strategy all-reduces
gradients only on the last micro-batch of a round (``no_sync`` on the others) and steps each
network once per round. Everything try-on specific lives in the recipe; everything
cluster-specific (Ray, storage) arrives through ``WorkerContext``, so the same function runs
under Ray Train, in a bare process (benchmarks, tests) or under Tune.
"""

from __future__ import annotations

import contextlib
import copy
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Mapping

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from orchestrator.checkpoints.state import (
    CheckpointMeta,
    TrainingPosition,
    read_checkpoint,
    restore_rng_states,
    write_checkpoint,
)
from orchestrator.config import Config
from orchestrator.train.data import make_train_stream, manifest_sha256
from orchestrator.train.freezing import frozen, power_iteration_paused
from orchestrator.train.precision import Precision
from orchestrator.registry.stages import attach_consumed_stages
from orchestrator.train.strategy import Strategy, build_strategy
from orchestrator.registry.tracking import git_commit, make_tracker, sample_grid
from orchestrator.train.validation import Validator
from orchestrator.recipes import build_recipe_from_config
from vton_models.recipe import Recipe

@dataclass
class WorkerContext:
    """What the launcher provides: who this worker is, where to resume from, how to report."""

    rank: int = 0
    world_size: int = 1
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    restore_dir: Path | None = None
    #: Called by EVERY rank at the same steps (it is a barrier under Ray Train) with this rank's
    #: metrics and a checkpoint directory (or None).
    report: Callable[[dict[str, float], Path | None], None] = lambda metrics, ckpt: None


@dataclass
class LoopHooks:
    """Test and benchmark injection points; production runs pass none."""

    before_step: Callable[[str, Strategy, int], None] | None = None  # (network, strategy, step)
    #: Replaces the shard stream: anything with ``batches_per_epoch`` and ``iter_from_batches(n)``.
    train_data: object | None = None


@dataclass
class LoopResult:
    position: TrainingPosition
    val_before: dict[str, float] | None
    val_after: dict[str, float] | None
    last_metrics: dict[str, float]
    mlflow_run_id: str | None
    model_version: str | None
    steps_run: int


def seed_everything(seed: int) -> None:
    import random

    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


class GeneratorEMA:
    """Exponential moving average of G's weights, used for evaluation and the exported model."""

    def __init__(self, generator: nn.Module, decay: float) -> None:
        """``generator``: a fresh, plain copy (not a strategy's wrapped module, see ``_plain_copy``)."""
        self.decay = decay
        self.module = generator.eval().requires_grad_(False)

    @torch.no_grad()
    def update(self, generator: nn.Module) -> None:
        for ema_p, p in zip(self.module.parameters(), generator.parameters()):
            ema_p.lerp_(p.detach(), 1.0 - self.decay)
        for ema_b, b in zip(self.module.buffers(), generator.buffers()):
            ema_b.copy_(b)


def _to_device(batch: Mapping[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    return {k: v.to(device, non_blocking=True) if torch.is_tensor(v) else v for k, v in batch.items()}


def _single(recipe: Recipe, role: str, optional: bool = False) -> str | None:
    """The one network of ``role``; with ``optional``, None when the recipe has none (e.g. a GMM stage
    trained by regression alone: no D phase is run rather than stepping a D whose losses weigh 0)."""
    names = [spec.name for spec in recipe.networks if spec.role == role]
    if optional and not names:
        return None
    if len(names) != 1:
        raise ValueError(f"recipe '{recipe.name}' has {len(names)} {role} networks {names}; the loop steps "
                         f"exactly one per role (wrap several heads in one module)")
    return names[0]


class GanLoop:
    def __init__(self, cfg: Config, ctx: WorkerContext, hooks: LoopHooks | None = None) -> None:
        self.cfg, self.ctx, self.hooks = cfg, ctx, hooks or LoopHooks()
        seed_everything(cfg.train.seed)  # identical initial weights on every rank
        if cfg.train.deterministic:
            torch.use_deterministic_algorithms(True)
        self.recipe = build_recipe_from_config(cfg)
        attach_consumed_stages(self.recipe)  # frozen earlier stages from the registry, if any
        self.g_name = _single(self.recipe, "generator")
        self.d_name = _single(self.recipe, "discriminator", optional=True)
        nets = self.recipe.build_networks()
        self.precision = Precision(cfg.precision.mode, ctx.device, [s.name for s in self.recipe.networks],
                                   cfg.precision.init_scale, cfg.precision.growth_interval)
        self.strategy = build_strategy(cfg, nets, self.recipe.networks, ctx.device, self.precision)
        self.ema = GeneratorEMA(self._plain_copy(self.strategy.module(self.g_name)), cfg.train.ema_decay) \
            if cfg.train.ema_decay > 0 else None
        self.schedulers = {}
        if cfg.train.lr_plateau_patience > 0:
            self.schedulers = {
                spec.name: torch.optim.lr_scheduler.ReduceLROnPlateau(
                    self.strategy.optimizer(spec.name), mode="min", factor=cfg.train.lr_plateau_factor,
                    patience=cfg.train.lr_plateau_patience)
                for spec in self.recipe.networks
            }
        self.position = TrainingPosition()
        self.val_before: dict[str, float] | None = None  # held-out metrics of the untrained model
        self.resume_metrics: dict[str, float | str] = {}  # where this attempt continued from (reports)
        resume_run_id = None
        if ctx.restore_dir is not None:
            resume_run_id = self._restore(ctx.restore_dir)
        else:
            seed_everything(cfg.train.seed * 1000 + ctx.rank)  # per-rank noise from here on
        self.tracker = make_tracker(cfg, ctx.rank, resume_run_id)
        self.validator = Validator(cfg, self.recipe, ctx) if cfg.data.val_manifest else None

    # ------------------------------------------------------------------------- state

    def _restore(self, directory: Path) -> str | None:
        meta, state, rng = read_checkpoint(directory, self.ctx.rank)
        if meta.recipe != self.recipe.name:
            raise ValueError(f"checkpoint {directory} was written by recipe '{meta.recipe}', "
                             f"not '{self.recipe.name}'")
        self.strategy.load_state_dict(state["strategy"])
        self.strategy.load_from(directory, self.ctx.rank)  # collective for DeepSpeed: every rank
        if self.ema is not None and state.get("ema") is not None:
            self.ema.module.load_state_dict(state["ema"])
        for name, sched_state in state.get("schedulers", {}).items():
            if name in self.schedulers:
                self.schedulers[name].load_state_dict(sched_state)
        self.position = meta.position
        self.val_before = meta.val_before
        self.resume_metrics = self._apply_configured_lrs(meta.config)
        if rng is not None:
            restore_rng_states(rng)
        else:
            seed_everything(self.cfg.train.seed * 1000 + self.ctx.rank + self.position.step)
        if self.ctx.rank == 0:
            print(f"[vton] resumed at step {self.position.step} ({self.position.batches_consumed} batches "
                  f"consumed) from {directory}", flush=True)
        return meta.mlflow_run_id

    def _shared_state(self) -> dict:
        return {
            "strategy": self.strategy.state_dict(),
            "ema": self.ema.module.state_dict() if self.ema else None,
            "schedulers": {name: s.state_dict() for name, s in self.schedulers.items()},
        }

    def _save_and_report(self, metrics: dict[str, float]) -> None:
        meta = CheckpointMeta(position=copy.copy(self.position), mlflow_run_id=self.tracker.run_id,
                              recipe=self.recipe.name, strategy=self.cfg.strategy.name,
                              world_size=self.ctx.world_size, val_before=self.val_before,
                              config=self.cfg.to_dict())
        with tempfile.TemporaryDirectory(prefix="vton-ckpt-") as tmp:
            write_checkpoint(Path(tmp), self.ctx.rank, meta, self._shared_state() if self.ctx.rank == 0 else None)
            self.strategy.save_to(Path(tmp), self.ctx.rank)  # collective for DeepSpeed: every rank
            self.ctx.report({**metrics, **self.resume_metrics, "step": self.position.step}, Path(tmp))

    def _apply_configured_lrs(self, written: dict | None) -> dict[str, float | str]:
        """After the optimizer state is loaded, this run's configured learning rates win where they
        differ from the ones the checkpoint was written with.

        PBT copies a donor trial's checkpoint into a trial with perturbed rates; the loaded optimizer
        state carries the donor's rates, so without this a perturbed ``train.lr_*`` would silently be
        the donor's (Ray's PBT-DCGAN example re-applies them the same way). Loss weights need nothing:
        the recipe reads them from this run's config, never from a checkpoint. A plain resume (same
        configured rates) keeps what the optimizer had, e.g. rates a plateau scheduler lowered.
        Returns ``resume/*`` report values: the step and run continued from, and the rate now in
        each optimizer (with the checkpoint's configured rate where it was replaced).
        """
        out: dict[str, float | str] = {"resume/step": float(self.position.step)}
        if written:
            out["resume/from"] = str(written.get("name", ""))
        replaced = []
        for spec in self.recipe.networks:
            section, key = spec.lr_key.split(".")
            configured = float(getattr(getattr(self.cfg, section), key))
            before = (written or {}).get(section, {}).get(key)
            if before is not None and float(before) != configured:
                self.strategy.set_lr(spec.name, configured)
                out[f"resume/checkpoint_lr/{spec.name}"] = float(before)
                replaced.append(f"{spec.name} {configured:.3g} (checkpoint: {float(before):.3g})")
            out[f"resume/lr/{spec.name}"] = float(self.strategy.optimizer(spec.name).param_groups[0]["lr"])
        if replaced and self.ctx.rank == 0:
            print(f"[vton] learning rates from this run's config, not the checkpoint's: {', '.join(replaced)}",
                  flush=True)
        return out

    # ------------------------------------------------------------------------- step

    def _micro_step(self, x: dict[str, torch.Tensor], first: bool, boundary: bool, with_g: bool,
                    sums: dict[str, float]) -> torch.Tensor | None:
        cfg, strategy, recipe = self.cfg, self.strategy, self.recipe
        scale = 1.0 / cfg.train.grad_accum
        G = strategy.module(self.g_name)
        D = strategy.module(self.d_name) if self.d_name is not None else None
        if D is not None:
            with strategy.accumulate(self.d_name, boundary), power_iteration_paused(D, paused=not first):
                with self.precision.autocast():
                    d_terms = recipe.d_losses({self.g_name: G, self.d_name: strategy.forward_module(self.d_name)}, x)
                    d_loss = recipe.weighted_sum(d_terms)
                strategy.backward(self.d_name, d_loss * scale)
            _accumulate(sums, "loss/D", d_terms, d_loss, scale)
        if not with_g:
            return None
        g_nets = {self.g_name: strategy.forward_module(self.g_name)}
        if D is not None:
            g_nets[self.d_name] = D
        with strategy.accumulate(self.g_name, boundary), (frozen(D) if D is not None else contextlib.nullcontext()):
            with self.precision.autocast():
                g_terms, fake = recipe.g_losses(g_nets, x)
                g_loss = recipe.weighted_sum(g_terms)
            strategy.backward(self.g_name, g_loss * scale)
        _accumulate(sums, "loss/G", g_terms, g_loss, scale)
        return fake.detach()

    def _optimizer_step(self, batches: Iterator[dict], metrics: dict[str, float]) -> tuple[dict, torch.Tensor | None]:
        cfg = self.cfg
        data_wait = 0.0
        sums: dict[str, float] = {}
        x, fake = None, None
        rounds = cfg.train.d_steps_per_g if self.d_name is not None else 1
        for d_round in range(rounds):
            with_g = d_round == rounds - 1
            for micro in range(cfg.train.grad_accum):
                waited = time.perf_counter()
                batch = next(batches)
                data_wait += time.perf_counter() - waited
                self.position.batches_consumed += 1
                x = self.recipe.inputs(_to_device(batch, self.ctx.device))
                fake = self._micro_step(x, micro == 0, micro == cfg.train.grad_accum - 1, with_g, sums)
            if self.d_name is not None:
                self._step_network(self.d_name, metrics)
        self._step_network(self.g_name, metrics)
        if self.ema is not None:
            self.ema.update(self.strategy.module(self.g_name))
        metrics.update({k: (v / rounds if k.startswith("loss/D") else v) for k, v in sums.items()})
        metrics["perf/data_wait_s"] = data_wait
        return x, fake

    def _step_network(self, name: str, metrics: dict[str, float]) -> None:
        if self.hooks.before_step:
            self.hooks.before_step(name, self.strategy, self.position.step)
        report = self.strategy.step(name)
        metrics[f"grad_norm/{name}"] = report.grad_norm
        metrics[f"skipped/{name}"] = metrics.get(f"skipped/{name}", 0.0) + (0.0 if report.stepped else 1.0)
        scale = self.precision.scale_value(name)
        if scale is not None:
            metrics[f"scale/{name}"] = scale
        metrics[f"lr/{name}"] = self.strategy.optimizer(name).param_groups[0]["lr"]

    # ------------------------------------------------------------------------- run

    def _evaluate(self) -> dict[str, float]:
        generator = self.ema.module if self.ema else self.strategy.module(self.g_name)
        values = self.validator.run(generator, self.g_name)
        if self.ctx.rank == 0:
            extra = "".join(f"  {k[4:]} {v:.4f}" for k, v in values.items()
                            if k not in ("val/l1", "val/ssim", "val/psnr", "val/images"))
            print(f"[vton] held-out at step {self.position.step}: L1 {values['val/l1']:.4f}  "
                  f"SSIM {values['val/ssim']:.4f}  PSNR {values['val/psnr']:.2f} dB{extra}", flush=True)
        for name, scheduler in self.schedulers.items():
            scheduler.step(values["val/l1"])
        self.tracker.log_metrics(values, self.position.step)
        return values

    def run(self) -> LoopResult:
        cfg, ctx = self.cfg, self.ctx
        stream = self.hooks.train_data or make_train_stream(cfg, self.recipe, ctx.rank, ctx.world_size, str(ctx.device))
        batches = stream.iter_from_batches(self.position.batches_consumed)
        if self.validator and self.position.step == 0:
            self.val_before = self._evaluate()
        rounds = cfg.train.d_steps_per_g if self.d_name is not None else 1
        global_batch = cfg.data.batch_size * cfg.train.grad_accum * rounds * ctx.world_size
        steps_run, metrics, val_after = 0, {}, None
        status = "FAILED"
        steady_since: float | None = None  # throughput excludes the first steps (allocator, threads warm-up)
        try:
            while self.position.step < cfg.train.steps:
                started = time.perf_counter()
                metrics = {}
                x, fake = self._optimizer_step(batches, metrics)
                self.position.step += 1
                steps_run += 1
                elapsed = time.perf_counter() - started
                metrics.update({
                    "perf/step_time_s": elapsed,
                    "perf/compute_s": elapsed - metrics["perf/data_wait_s"],
                    "perf/samples_per_s": global_batch / elapsed,
                    "data/epoch": self.position.batches_consumed / max(stream.batches_per_epoch, 1),
                })
                step = self.position.step
                if steps_run == _WARMUP_STEPS:
                    steady_since = time.perf_counter()
                elif steady_since is not None:
                    metrics["perf/steady_steps_per_s"] = (steps_run - _WARMUP_STEPS) / (time.perf_counter() - steady_since)
                if step % cfg.train.log_every == 0 or step == cfg.train.steps:
                    self.tracker.log_metrics(metrics, step)
                    if ctx.rank == 0:
                        _print_progress(step, cfg.train.steps, metrics)
                if ctx.rank == 0 and cfg.train.sample_every and (step % cfg.train.sample_every == 0 or step == 1):
                    self.tracker.log_sample_grid(sample_grid(self.recipe.sample_panels(x, fake)), step)
                if self.validator and cfg.train.eval_every and step % cfg.train.eval_every == 0 \
                        and step != cfg.train.steps:
                    metrics.update(self._evaluate())
                if step % cfg.checkpoint.every_n_steps == 0 and step != cfg.train.steps:
                    self._save_and_report(metrics)
            version = None
            if steps_run:
                if self.validator:
                    val_after = self._evaluate()
                    metrics.update(val_after)
                version = self._export()
                self._save_and_report({**metrics, "mlflow_run_id": self.tracker.run_id, "model_version": version,
                                       "val_before": self.val_before, "val_after": val_after,
                                       "steps_this_attempt": steps_run,
                                       "batches_consumed": self.position.batches_consumed})
            status = "FINISHED"
        finally:
            self.tracker.close(status)
        return LoopResult(self.position, self.val_before, val_after, metrics, self.tracker.run_id, version, steps_run)

    def _plain_copy(self, source: nn.Module) -> nn.Module:
        """A freshly built G holding ``source``'s weights, on ``source``'s device.

        Not ``deepcopy``: a strategy may hang state on the module it wraps (DeepSpeed attaches
        process groups and ZeRO hooks), which must not leak into the EMA or the pickled MLflow model.
        """
        fresh = self.recipe.build_networks()[self.g_name]
        fresh.load_state_dict(source.state_dict())
        return fresh.to(next(source.parameters()).device)

    def _export(self) -> str | None:
        if self.ctx.rank != 0 or not self.cfg.tracking.enabled:
            return None
        generator = self._plain_copy(self.ema.module if self.ema else self.strategy.module(self.g_name))
        tags = {
            "recipe": self.recipe.name,
            "dataset_manifest_sha256": manifest_sha256(self.cfg.data.manifest),
            "git_commit": git_commit(),
            "run_name": self.cfg.name,
            "steps": str(self.position.step),
        }
        return self.tracker.log_generator(generator, self.cfg, tags)


_WARMUP_STEPS = 3


def _print_progress(step: int, total: int, metrics: Mapping[str, float]) -> None:
    """One line per log interval on rank 0; `vton submit` shows these lines while it waits."""
    print(f"[vton] step {step}/{total}  G {metrics.get('loss/G_total', float('nan')):.3f}  "
          f"D {metrics.get('loss/D_total', float('nan')):.3f}  "
          f"{metrics.get('perf/samples_per_s', 0.0):.1f} samples/s  "
          f"data wait {metrics.get('perf/data_wait_s', 0.0) * 1000:.0f} ms", flush=True)


def _accumulate(sums: dict[str, float], prefix: str, terms: Mapping[str, torch.Tensor],
                total: torch.Tensor, scale: float) -> None:
    for name, value in terms.items():
        key = f"{prefix}/{name}"
        sums[key] = sums.get(key, 0.0) + float(value.detach()) * scale
    sums[f"{prefix}_total"] = sums.get(f"{prefix}_total", 0.0) + float(total.detach()) * scale


def train_worker(cfg: Config, ctx: WorkerContext, hooks: LoopHooks | None = None) -> LoopResult:
    """Entry point of one training worker (Ray Train calls this through ``launch.py``)."""
    return GanLoop(cfg, ctx, hooks).run()


def all_reduce_sum(values: torch.Tensor) -> torch.Tensor:
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        dist.all_reduce(values, op=dist.ReduceOp.SUM)
    return values

