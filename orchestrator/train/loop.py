"""The per-worker trainer: one loop for every recipe, any number of networks, DDP or DeepSpeed, any precision.

A training step is the recipe's phases, as data (StyleGAN3's ``training_loop.py`` is the model):
``train.d_steps_per_g`` rounds for the phases that step only discriminators (the others run in the
last round), each round ``train.grad_accum`` micro-batches; per micro-batch every active phase in
its declared order computes its loss and backpropagates it into the networks it steps, all other
networks frozen; the strategy all-reduces gradients only on a round's last micro-batch
(``no_sync`` on the others) and steps each network at the end of every round its phase ran in.
Statistics stay on the device until a log point (``stats.TrainingStats``). Everything try-on
specific lives in the recipe; everything cluster-specific (Ray, storage) arrives through
``WorkerContext``, so the same function runs under Ray Train, in a bare process (benchmarks,
tests) or under Tune.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Mapping

import numpy as np
import torch
from torch import nn

from orchestrator.checkpoints.state import (
    CheckpointMeta,
    TrainingPosition,
    read_checkpoint,
    restore_rng_states,
    write_checkpoint,
)
from orchestrator.config import Config, config_from_dict
from orchestrator.recipes import build_recipe_from_config, refuse_inference_only
from orchestrator.registry.stages import attach_consumed_stages, load_initial_weights
from orchestrator.provenance import git_commit
from orchestrator.registry.serving import serving_example
from orchestrator.registry.tracking import make_tracker, sample_grid
from orchestrator.train.bad_samples import BadSampleCounter
from orchestrator.train.data import make_train_stream, manifest_sha256, stream_data_tags, stream_manifest
from orchestrator.train.ema import NetworkEMA
from orchestrator.train.freezing import frozen, power_iteration_paused
from orchestrator.train.memory_format import (
    batch_to_device,
    configure_cudnn,
    to_memory_format,
    trained_weights_channels_last,
)
from orchestrator.train.optim import build_schedule, resolve_optimizers
from orchestrator.train.precision import Precision
from orchestrator.train.stats import TrainingStats
from orchestrator.train.strategy import Strategy, build_strategy
from orchestrator.train.validation import Validator
from vton_models.recipe import Phase


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


def micro_batch_seed(seed: int, step: int, rank: int, micro_batch: int) -> int:
    """A 63-bit seed that only (``train.seed``, step, rank, micro-batch) decide: a resumed run
    (same step, same consumed-batch count) gets the seeds the uninterrupted run got."""
    digest = hashlib.sha256(f"{seed}:{step}:{rank}:{micro_batch}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


class GanLoop:
    def __init__(self, cfg: Config, ctx: WorkerContext, hooks: LoopHooks | None = None) -> None:
        self.cfg, self.ctx, self.hooks = cfg, ctx, hooks or LoopHooks()
        seed_everything(cfg.train.seed)  # identical initial weights on every rank
        # Either way: the setting is per process, and a deterministic run before this one in the same
        # process (a notebook, a test session) left it on, NaN-filling every new tensor's memory.
        torch.use_deterministic_algorithms(cfg.train.deterministic)
        configure_cudnn(cfg.train.cudnn_benchmark, ctx.device, announce=ctx.rank == 0)
        self.recipe = build_recipe_from_config(cfg)
        refuse_inference_only(self.recipe)
        self.recipe.reuse_fakes = cfg.train.reuse_fakes
        # Frozen earlier stages from the registry, if any, in the memory format the run trains in.
        attach_consumed_stages(self.recipe, prepare=self._memory_format)
        self.roles = {spec.name: spec.role for spec in self.recipe.networks}
        self.phases = self._phase_order(self.recipe.phases, cfg.train.reuse_fakes)
        self.optimizers = resolve_optimizers(cfg, self.recipe)
        nets = self.recipe.build_networks()
        load_initial_weights(nets, cfg.model.init)  # trainable warm start; a checkpoint resume overrides it
        # Before the strategy wraps them: DDP's buckets and every optimizer take the layout they see.
        nhwc = trained_weights_channels_last(cfg, announce=ctx.rank == 0)
        nets = {name: to_memory_format(net, nhwc) for name, net in nets.items()}
        if cfg.precision.mode == "auto":  # ranks measuring on their own could choose differently
            raise ValueError("precision.mode: 'auto' must be resolved before the workers start "
                             "(orchestrator.train.precision_auto.resolve_precision; jobs.launch.build_trainer does)")
        self.precision = Precision(cfg.precision.mode, ctx.device, list(self.roles),
                                   cfg.precision.init_scale, cfg.precision.growth_interval)
        self.strategy = build_strategy(cfg, nets, self.recipe.networks, self.optimizers, ctx.device, self.precision)
        self.emas: dict[str, NetworkEMA] = {}
        if cfg.train.ema_decay > 0:
            fresh = self.recipe.build_networks()
            for name in self.recipe.generator_names():
                self.emas[name] = NetworkEMA(self._plain_copy(name, fresh), cfg.train.ema_decay)
        self.schedules = {name: build_schedule(cfg, settings, self.strategy.optimizer(name))
                          for name, settings in self.optimizers.items()}
        self.stats = TrainingStats(ctx.device)
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
        self.data_tags: dict[str, str] = {}  # what the representation took from the data (run + model tags)
        self._manifest_sha256: str | None = None  # the training manifest's, read once by rank 0
        self._last_inputs: dict | None = None  # the logged model's input example comes from these

    def _memory_format(self, net: nn.Module) -> nn.Module:
        """``net`` in NHWC under ``train.channels_last`` (orchestrator.train.memory_format), else as built."""
        return to_memory_format(net, self.cfg.train.channels_last)

    # ------------------------------------------------------------------------- state

    def _restore(self, directory: Path) -> str | None:
        if self.ctx.rank == 0:
            print("[vton] phase: restoring the checkpoint", flush=True)
        meta, state, rng = read_checkpoint(directory, self.ctx.rank)
        if meta.recipe != self.recipe.name:
            raise ValueError(f"checkpoint {directory} was written by recipe '{meta.recipe}', "
                             f"not '{self.recipe.name}'")
        self.strategy.load_state_dict(state["strategy"])
        self.strategy.load_from(directory, self.ctx.rank)  # collective for DeepSpeed: every rank
        for name, ema_state in _ema_states(state.get("ema"), self.recipe.generator_names()).items():
            if name in self.emas:
                self.emas[name].module.load_state_dict(ema_state)
        for name, schedule_state in state.get("schedulers", {}).items():
            if name in self.schedules:
                self.schedules[name].load_state_dict(schedule_state)
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
            "ema": {name: ema.module.state_dict() for name, ema in self.emas.items()} or None,
            "schedulers": {name: s.state_dict() for name, s in self.schedules.items()},
        }

    def _save_and_report(self, metrics: dict[str, float]) -> None:
        self.bad_samples.settle()  # the counts go into the checkpointed position, not lost on resume
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
        state carries the donor's rates, so without this a perturbed ``train.lr*`` would silently be
        the donor's (Ray's PBT-DCGAN example re-applies them the same way). Every network's rate is
        compared as the two configs resolve it (``train.lr.<network>``, ``lr_g`` / ``lr_d``, the
        recipe's). Loss weights need nothing: the recipe reads them from this run's config, never
        from a checkpoint. A plain resume (same configured rates) keeps what the optimizer had, e.g.
        rates a plateau scheduler lowered. Returns ``resume/*`` report values: the step and run
        continued from, and the rate now in each optimizer (with the checkpoint's configured rate
        where it was replaced).
        """
        out: dict[str, float | str] = {"resume/step": float(self.position.step)}
        before: dict[str, float] = {}
        if written:
            out["resume/from"] = str(written.get("name", ""))
            try:
                before = {n: s.lr for n, s in resolve_optimizers(config_from_dict(written), self.recipe).items()}
            except ValueError:  # a config this version can no longer read: nothing to compare against
                before = {}
        replaced = []
        for name, settings in self.optimizers.items():
            if name in before and before[name] != settings.lr:
                self.strategy.set_lr(name, settings.lr)
                out[f"resume/checkpoint_lr/{name}"] = float(before[name])
                replaced.append(f"{name} {settings.lr:.3g} (checkpoint: {before[name]:.3g})")
            out[f"resume/lr/{name}"] = self.strategy.lr(name)
        if replaced and self.ctx.rank == 0:
            print(f"[vton] learning rates from this run's config, not the checkpoint's: {', '.join(replaced)}",
                  flush=True)
        return out

    # ------------------------------------------------------------------------- step

    def _only_discriminators(self, phase: Phase) -> bool:
        return all(self.roles[n] == "discriminator" for n in phase.networks)

    def _phase_order(self, phases: tuple[Phase, ...], reuse_fakes: bool) -> list[Phase]:
        """The declared order, or under ``train.reuse_fakes`` the phases that step a generator first
        (each order kept), so a discriminator phase can judge the fakes they generated."""
        if not reuse_fakes:
            return list(phases)
        return sorted(phases, key=self._only_discriminators)  # stable: False (generators) first

    def _rounds(self, phase: Phase) -> int:
        return self.cfg.train.d_steps_per_g if self._only_discriminators(phase) else 1

    def _micro_step(self, phase: Phase, x: dict[str, torch.Tensor], first: bool, boundary: bool,
                    sums: dict[str, torch.Tensor]) -> torch.Tensor | None:
        """One micro-batch of ``phase``; returns the image its loss produced (for sample grids)."""
        strategy, recipe = self.strategy, self.recipe
        stepped = phase.networks
        nets: dict[str, nn.Module] = {name: strategy.module(name) for name in self.roles}
        nets.update(strategy.phase_modules(stepped))
        with contextlib.ExitStack() as stack:
            stack.enter_context(strategy.accumulate(stepped, boundary))
            for name, role in self.roles.items():
                if name not in stepped:
                    stack.enter_context(frozen(strategy.module(name), pause_power_iteration=role == "discriminator"))
                elif role == "discriminator":  # one power-iteration step per optimizer step
                    stack.enter_context(power_iteration_paused(strategy.module(name), paused=not first))
            with self.precision.autocast():
                out = getattr(recipe, phase.losses)(nets, x)
                terms, image = out if isinstance(out, tuple) else (out, None)
                loss = recipe.weighted_sum(terms)
            scale = 1.0 / self.cfg.train.grad_accum
            strategy.backward(stepped, loss * scale)
        for term, value in terms.items():
            _add(sums, f"loss/{phase.name}/{term}", value, scale)
        _add(sums, f"loss/{phase.name}_total", loss, scale)
        return None if image is None else image.detach()

    def _optimizer_step(self, batches: Iterator[dict]) -> tuple[dict, torch.Tensor | None, float]:
        cfg, step = self.cfg, self.position.step
        phases = [p for p in self.phases if step % p.every == 0]
        rounds = {p.name: self._rounds(p) for p in phases}
        total_rounds = max(rounds.values(), default=1)
        data_wait = 0.0
        x, image = None, None
        sums: dict[str, dict[str, torch.Tensor]] = {p.name: {} for p in phases}
        for round_index in range(total_rounds):
            active = [p for p in phases if round_index >= total_rounds - rounds[p.name]]
            for micro in range(cfg.train.grad_accum):
                waited = time.perf_counter()
                batch = next(batches)
                data_wait += time.perf_counter() - waited
                self.position.batches_consumed += 1
                self.bad_samples.add(batch)
                self.recipe.training_seed = micro_batch_seed(cfg.train.seed, step, self.ctx.rank,
                                                             self.position.batches_consumed)
                x = self.recipe.inputs(batch_to_device(batch, self.ctx.device, cfg.train.channels_last))
                for phase in active:
                    produced = self._micro_step(phase, x, micro == 0, micro == cfg.train.grad_accum - 1,
                                                sums[phase.name])
                    image = produced if produced is not None else image
            for phase in active:
                for name in phase.networks:
                    self._step_network(name)
        self.recipe.training_seed = None  # evaluation and sample grids draw nothing
        for name, ema in self.emas.items():
            ema.update(self.strategy.module(name))
        for phase in phases:  # a phase's terms: the mean over its rounds of each round's accumulated value
            for key, value in sums[phase.name].items():
                self.stats.add(key, value / rounds[phase.name])
        return x, image, data_wait

    def _step_network(self, name: str) -> None:
        if self.hooks.before_step:
            self.hooks.before_step(name, self.strategy, self.position.step)
        lr = self.schedules[name].before_step(self.position.step)
        if lr is not None:
            self.strategy.set_lr(name, lr)
        report = self.strategy.step(name)
        self.stats.add(f"grad_norm/{name}", report.grad_norm)
        skipped = 1.0 - report.stepped.to(torch.float64) if torch.is_tensor(report.stepped) else float(not report.stepped)
        self.stats.add(f"skipped/{name}", skipped, kind="total")

    # ------------------------------------------------------------------------- run

    def generators(self) -> dict[str, nn.Module]:
        """What evaluation and export use: each generator's EMA copy when EMA is on, else itself."""
        return {name: (self.emas[name].module if name in self.emas else self.strategy.module(name))
                for name in self.recipe.generator_names()}

    def _evaluate(self) -> dict[str, float]:
        values = self.validator.run(self.generators())
        if self.ctx.rank == 0:
            extra = "".join(f"  {k[4:]} {v:.4f}" for k, v in values.items()
                            if k not in ("val/l1", "val/ssim", "val/psnr", "val/images"))
            print(f"[vton] held-out at step {self.position.step}: L1 {values['val/l1']:.4f}  "
                  f"SSIM {values['val/ssim']:.4f}  PSNR {values['val/psnr']:.2f} dB{extra}", flush=True)
        for schedule in self.schedules.values():
            schedule.after_validation(values["val/l1"])
        self.tracker.log_metrics(values, self.position.step)
        return values

    def _log_sample_grids(self, x: dict, image: torch.Tensor, step: int) -> None:
        """Rank 0: the fixed held-out people (when there is a held-out set), the same at every step,
        and this step's training batch, each with labelled columns."""
        if self.validator is not None:
            self.tracker.log_sample_grid(sample_grid(self.validator.sample_columns(self.generators())), step,
                                         key="heldout_samples")
        self.tracker.log_sample_grid(sample_grid(self.recipe.sample_panels(x, image)), step, key="train_samples")

    def _log_point(self) -> dict[str, float]:
        """Collective: every rank reduces its statistics at the same step."""
        metrics = {**self.stats.reduce(), **self.bad_samples.settle()}
        for name in self.roles:
            metrics[f"lr/{name}"] = self.strategy.lr(name)
            scale = self.precision.scale_value(name)
            if scale is not None:
                metrics[f"scale/{name}"] = scale
        self.tracker.log_metrics(metrics, self.position.step)
        if self.ctx.rank == 0:
            _print_progress(self.position.step, self.cfg.train.steps, metrics)
        return metrics

    def run(self) -> LoopResult:
        cfg, ctx = self.cfg, self.ctx
        stream = self.hooks.train_data or make_train_stream(cfg, self.recipe, ctx.rank, ctx.world_size, str(ctx.device))
        self.data_tags = stream_data_tags(stream, self.recipe)
        manifest = stream_manifest(stream)
        self.bad_samples = BadSampleCounter(self.position, cfg.data.max_bad_fraction,
                                            manifest.num_samples if manifest is not None else 0,
                                            cfg.data.manifest, ctx.device)
        self.data_tags["vton.precision"] = cfg.precision.mode + (
            f" (auto: {cfg.precision.auto_reason})" if cfg.precision.auto_reason else "")
        forcing = self.recipe.teacher_forcing()
        if forcing:  # what the stage reads from the ground truth instead of an upstream prediction
            self.data_tags["vton.teacher_forcing"] = forcing
        self.tracker.set_tags(self.data_tags)
        if manifest is not None and ctx.rank == 0 and cfg.tracking.enabled:
            self._manifest_sha256 = manifest_sha256(cfg.data.manifest)
            if self.position.step == 0:  # a resumed run has its input already
                self.tracker.log_dataset(cfg.data.manifest, self._manifest_sha256, "training")
        batches = stream.iter_from_batches(self.position.batches_consumed)
        if self.validator and self.position.step == 0:
            if ctx.rank == 0:
                print("[vton] phase: held-out evaluation of the untrained networks", flush=True)
            self.val_before = self._evaluate()
        if ctx.rank == 0:
            print(f"[vton] phase: training, step {self.position.step} of {cfg.train.steps}", flush=True)
        samples_per_step = cfg.data.batch_size * cfg.train.grad_accum * ctx.world_size * max(
            (self._rounds(p) for p in self.phases), default=1)
        steps_run, metrics, val_after = 0, {}, None
        status = "FAILED"
        steady_since: float | None = None  # throughput excludes the first steps (allocator, threads warm-up)
        try:
            while self.position.step < cfg.train.steps:
                started = time.perf_counter()
                x, image, data_wait = self._optimizer_step(batches)
                self._last_inputs = x
                self.position.step += 1
                steps_run += 1
                elapsed = time.perf_counter() - started
                for key, value in (("perf/step_time_s", elapsed), ("perf/compute_s", elapsed - data_wait),
                                   ("perf/data_wait_s", data_wait), ("perf/samples_per_s", samples_per_step / elapsed)):
                    self.stats.add(key, value)
                self.stats.add("data/epoch", self.position.batches_consumed / max(stream.batches_per_epoch, 1), "last")
                step = self.position.step
                if steps_run == _WARMUP_STEPS:
                    steady_since = time.perf_counter()
                elif steady_since is not None:
                    self.stats.add("perf/steady_steps_per_s",
                                   (steps_run - _WARMUP_STEPS) / (time.perf_counter() - steady_since), "last")
                if step % cfg.train.log_every == 0 or step == cfg.train.steps:
                    metrics = self._log_point()
                if ctx.rank == 0 and cfg.train.sample_every and image is not None \
                        and (step % cfg.train.sample_every == 0 or step == 1):
                    self._log_sample_grids(x, image, step)
                evaluated = {}
                if self.validator and cfg.train.eval_every and step % cfg.train.eval_every == 0 \
                        and step != cfg.train.steps:
                    evaluated = self._evaluate()
                if step % cfg.checkpoint.every_n_steps == 0 and step != cfg.train.steps:
                    self._save_and_report({**metrics, **evaluated})
            version = None
            if steps_run:
                if self.validator:
                    val_after = self._evaluate()
                    metrics = {**metrics, **val_after}
                version = self._export()
                self._save_and_report({**metrics, "mlflow_run_id": self.tracker.run_id, "model_version": version,
                                       "val_before": self.val_before, "val_after": val_after,
                                       "steps_this_attempt": steps_run,
                                       "batches_consumed": self.position.batches_consumed})
            status = "FINISHED"
        finally:
            self.tracker.close(status)
        return LoopResult(self.position, self.val_before, val_after, metrics, self.tracker.run_id, version, steps_run)

    def _plain_copy(self, name: str, fresh: Mapping[str, nn.Module] | None = None) -> nn.Module:
        """A freshly built network ``name`` holding the trained one's weights, on its device.

        Not ``deepcopy``: a strategy may hang state on the module it wraps (DeepSpeed attaches
        process groups and ZeRO hooks), which must not leak into the EMA or the pickled MLflow model.
        """
        source = self.strategy.module(name)
        network = (fresh or self.recipe.build_networks())[name]
        network.load_state_dict(source.state_dict())
        return self._memory_format(network.to(next(source.parameters()).device))

    def _export(self) -> str | None:
        """Register the stage: its generators for generation (EMA copies when EMA is on) and every
        network's weights (and EMA copies) so a later stage can start from any of them."""
        if self.ctx.rank != 0 or not self.cfg.tracking.enabled:
            return None
        fresh = self.recipe.build_networks()
        generators = {}
        for name in self.recipe.generator_names():
            network = fresh[name]
            network.load_state_dict((self.emas[name].module if name in self.emas else self.strategy.module(name))
                                    .state_dict())
            generators[name] = network
        weights = {"networks": {n: _cpu(sd) for n, sd in self.strategy.network_state_dicts().items()},
                   "ema": {n: _cpu(e.module.state_dict()) for n, e in self.emas.items()}}
        tags = {
            "recipe": self.recipe.name,
            "dataset_manifest_sha256": self._manifest_sha256 or manifest_sha256(self.cfg.data.manifest),
            "git_commit": git_commit(),
            "run_name": self.cfg.name,
            "steps": str(self.position.step),
            **self.data_tags,
            **self.bad_samples.tags(),
        }
        example = serving_example(self.recipe, generators, self._last_inputs)
        return self.tracker.log_stage(generators, weights, self.cfg, tags, example)


_WARMUP_STEPS = 3


def _cpu(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu() for k, v in state.items()}


def _ema_states(saved: dict | None, generators: list[str]) -> dict[str, dict]:
    """EMA state dicts by network; checkpoints written before several generators had one EMA
    state dict (of the single generator) in place of the mapping."""
    if not saved:
        return {}
    if all(torch.is_tensor(v) for v in saved.values()):
        return {generators[0]: saved}
    return dict(saved)


def _add(sums: dict[str, torch.Tensor], key: str, value: torch.Tensor, scale: float) -> None:
    """Accumulate on the device in float64 (no host synchronisation)."""
    value = value.detach().to(torch.float64) * scale
    sums[key] = sums[key] + value if key in sums else value


def _print_progress(step: int, total: int, metrics: Mapping[str, float]) -> None:
    """One line per log interval on rank 0; `vton submit` shows these lines while it waits."""
    print(f"[vton] step {step}/{total}  G {metrics.get('loss/G_total', float('nan')):.3f}  "
          f"D {metrics.get('loss/D_total', float('nan')):.3f}  "
          f"{metrics.get('perf/samples_per_s', 0.0):.1f} samples/s  "
          f"data wait {metrics.get('perf/data_wait_s', 0.0) * 1000:.0f} ms", flush=True)


def train_worker(cfg: Config, ctx: WorkerContext, hooks: LoopHooks | None = None) -> LoopResult:
    """Entry point of one training worker (Ray Train calls this through ``jobs.launch``)."""
    return GanLoop(cfg, ctx, hooks).run()
