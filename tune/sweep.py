"""`vton tune`: plan a sweep (every check that needs no cluster), then run it with Ray Tune.

Where the driver runs: in the `vton tune` process, connected to the Ray cluster (the local stack's
head by default), like `vton train`. Tune's driver state is small and its results, checkpoints and
MLflow runs all live in shared storage, so nothing is lost with the driver except the ability to
keep scheduling; the trials and their Train runs execute on the cluster. The project tree travels
as the job's ``working_dir``, so trial actors and Train workers import the same code as the driver.

Storage layout, all under ``<checkpoint storage>/sweeps/<sweep>/``: Tune's experiment (its trial
dirs hold the checkpoints PBT exploits) and ``train/<sweep>-<trial>-gen<k>/`` per Train run.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, replace
from typing import Any

from orchestrator.config import Config, ConfigError, override_config
from orchestrator.jobs.launch import WORKER_START_TIMEOUT_ENV
from tune.results import SweepSummary, summarize_trial
from tune.schedulers import TIME_ATTR, build_scheduler, build_search, check_search, infer_mode
from tune.space import SearchSpace, SpaceError


@dataclass(frozen=True)
class SweepSettings:
    """`vton tune` options. Steps-valued ones default to ``checkpoint.every_n_steps``: reports
    (and so every scheduler decision) happen only at checkpoints."""

    scheduler: str = "asha"
    search: str = "random"
    trials: int = 4
    max_concurrent: int = 2
    metric: str = "val/l1"
    mode: str | None = None
    grace_period: int | None = None  # ASHA: steps before a trial can be stopped
    reduction_factor: float = 2.0  # ASHA
    perturbation_interval: int | None = None  # PBT: steps between exploit/explore decisions
    pbt_sync: bool = False  # PBT: perturb all trials together (every interval, the worst exploit the best)
    trial_cpus: float = 0.5  # the trial actor itself (it waits on its Train run); workers use ray.*
    name: str | None = None


@dataclass(frozen=True)
class SweepPlan:
    cfg: Config
    space: SearchSpace
    settings: SweepSettings  # with mode, grace period and interval resolved
    name: str
    space_text: str

    def params(self) -> dict[str, Any]:
        """The parent run's params describing the sweep (the space is logged beside them)."""
        s = self.settings
        out = {"scheduler": s.scheduler, "search": s.search, "trials": s.trials, "max_concurrent": s.max_concurrent,
               "metric": s.metric, "mode": s.mode, "train.steps": self.cfg.train.steps,
               "time_attr": TIME_ATTR, "trial_cpus": s.trial_cpus,
               "worker_cpus": self.cfg.ray.num_workers * self.cfg.ray.cpus_per_worker}
        if s.scheduler == "asha":
            out.update(grace_period=s.grace_period, reduction_factor=s.reduction_factor)
        else:
            out.update(perturbation_interval=s.perturbation_interval, pbt_sync=s.pbt_sync)
        return out


def plan_sweep(cfg: Config, space: SearchSpace, settings: SweepSettings, space_text: str = "") -> SweepPlan:
    """Every check that needs neither Ray nor data: scheduler/search combination, the space against
    the config, the metric against what the loop reports with its checkpoints. Raises ConfigError."""
    check_search(settings.search, settings.scheduler, space)
    space.validate(cfg)
    if settings.trials < 1 or settings.max_concurrent < 1:
        raise ConfigError(f"--trials {settings.trials} / --max-concurrent {settings.max_concurrent}: both must be >= 1")
    if settings.trial_cpus <= 0:
        raise ConfigError(f"--trial-cpus {settings.trial_cpus}: must be > 0 (Ray cannot place an empty bundle)")
    _check_metric_is_reported(cfg, settings.metric)
    every = cfg.checkpoint.every_n_steps
    grace = settings.grace_period or every
    interval = settings.perturbation_interval or every
    if settings.scheduler == "asha":
        if not 1 <= grace <= cfg.train.steps:
            raise ConfigError(f"--grace-period {grace}: must be in [1, train.steps={cfg.train.steps}]")
        if settings.reduction_factor <= 1:
            raise ConfigError(f"--reduction-factor {settings.reduction_factor}: must be > 1")
    elif interval >= cfg.train.steps or interval < every:
        raise ConfigError(
            f"--perturbation-interval {interval}: must be >= checkpoint.every_n_steps ({every}; PBT can only "
            f"act at a reported checkpoint) and < train.steps ({cfg.train.steps}), or PBT never perturbs")
    name = settings.name or f"{cfg.name}-{settings.scheduler}-{time.strftime('%Y%m%d-%H%M%S')}"
    if not name.strip() or "/" in name:
        raise ConfigError(f"--name {name!r}: must be non-empty and without '/'")
    resolved = replace(settings, mode=infer_mode(settings.metric, settings.mode), grace_period=grace,
                       perturbation_interval=interval)
    return SweepPlan(cfg, space, resolved, name, space_text)


def _check_metric_is_reported(cfg: Config, metric: str) -> None:
    """Tune sees only what the loop reports with a checkpoint: held-out metrics are in those reports
    only when evaluation runs at every checkpoint step."""
    if not metric.startswith("val/"):
        return
    if not cfg.data.val_manifest:
        raise ConfigError(f"--metric {metric} is a held-out metric but data.val_manifest is empty")
    every, evals = cfg.checkpoint.every_n_steps, cfg.train.eval_every
    if evals <= 0 or every % evals:
        raise ConfigError(
            f"--metric {metric}: the loop evaluates every train.eval_every={evals} steps but reports to Tune at "
            f"checkpoints (checkpoint.every_n_steps={every}); set train.eval_every to a divisor of "
            f"checkpoint.every_n_steps (e.g. train.eval_every={every}) so every report carries {metric}")


# --------------------------------------------------------------------------------- running

#: Seconds a trial's Train controller waits for its worker group. Ray's default (60 s) counts a slow
#: start as a failure and starts the group over; a sweep starts up to --max-concurrent groups at
#: once on shared nodes, each process importing torch, and on a 2-core node that took over 60 s
#: (a PBT sweep's retries then ran past 8 minutes). A user's own setting wins.
SWEEP_WORKER_START_TIMEOUT_S = 300


def set_worker_start_timeout() -> None:
    """Before connecting: the variable reaches the trials (and their controllers) through the
    driver's runtime_env (orchestrator.jobs.launch.FORWARDED_ENV)."""
    os.environ.setdefault(WORKER_START_TIMEOUT_ENV, str(SWEEP_WORKER_START_TIMEOUT_S))


def run_sweep(plan: SweepPlan) -> SweepSummary:
    """Run the sweep on the connected cluster; returns the summary (also logged to the parent run)."""
    import ray
    from ray import tune

    from orchestrator.jobs.capacity import Capacity
    from orchestrator.jobs.preflight import preflight
    from orchestrator.checkpoints.storage import storage_location, storage_url
    from orchestrator.registry.tracking import registered_model_name
    from tune.plot import trials_scatter_png
    from tune.tracking import SweepRun
    from tune.spec import TrialSpec
    from tune.trial import run_trial

    cfg, space, s = plan.cfg, plan.space, plan.settings
    preflight(cfg, Capacity.of_ray_cluster())  # data reachable and shaped for the recipe
    per_trial = s.trial_cpus + cfg.ray.num_workers * cfg.ray.cpus_per_worker
    cluster_cpus = ray.cluster_resources().get("CPU", 0)
    if per_trial > cluster_cpus:
        raise ConfigError(f"one trial needs {per_trial:g} CPUs (--trial-cpus {s.trial_cpus:g} + ray.num_workers "
                          f"{cfg.ray.num_workers} x ray.cpus_per_worker {cfg.ray.cpus_per_worker:g}) but the cluster "
                          f"has {cluster_cpus:g}; lower them (e.g. ray.num_workers=1 ray.cpus_per_worker=0.5)")

    sweep_url = f"{storage_url(cfg).rstrip('/')}/sweeps"
    sweep_run = SweepRun.start(cfg, plan.name, space, plan.params(), plan.space_text) if cfg.tracking.enabled else None
    spec = TrialSpec(
        sweep=plan.name, base_config=cfg.to_dict(), space=space, train_storage=f"{sweep_url}/{plan.name}/train",
        with_checkpoints=s.scheduler == "pbt", tracking=sweep_run.trial_tracking() if sweep_run else {},
    )
    storage_path, filesystem = storage_location(sweep_url)
    scheduler = build_scheduler(s.scheduler, space, cfg.train.steps, s.grace_period, s.reduction_factor,
                                s.perturbation_interval, s.pbt_sync)
    search_alg = build_search(s.search, s.max_concurrent)
    from tune.interrupts import InterruptWatch  # imports Ray: only once connected

    watch = InterruptWatch()
    tuner = tune.Tuner(
        tune.with_resources(tune.with_parameters(run_trial, spec=spec), {"CPU": s.trial_cpus}),
        param_space=space.tune_space(),
        tune_config=tune.TuneConfig(
            metric=s.metric, mode=s.mode, scheduler=scheduler, search_alg=search_alg, num_samples=s.trials,
            max_concurrent_trials=s.max_concurrent if search_alg is None else None, reuse_actors=False,
            trial_dirname_creator=_trial_dirname,
        ),
        run_config=tune.RunConfig(
            name=plan.name, storage_path=storage_path, storage_filesystem=filesystem,
            stop={TIME_ATTR: cfg.train.steps},  # the last report ends a trial (PBT must not perturb it)
            # PBT may hand any trial's latest Tune checkpoint to another: keep them all for the sweep.
            checkpoint_config=tune.CheckpointConfig(num_to_keep=None),
            failure_config=tune.FailureConfig(max_failures=0), verbose=1, callbacks=[watch],
        ),
    )
    status = "FAILED"
    try:
        grid = tuner.fit()
        summary = _summarize(grid, plan, sweep_run.run_id if sweep_run else None, watch)
        status = "FINISHED"
    finally:
        if sweep_run is not None and status == "FAILED":
            sweep_run.client.set_terminated(sweep_run.run_id, "FAILED")
    if sweep_run is not None:
        best = summary.best_trial()
        best_cfg = override_config(cfg, space.overrides(best.config)) if best else None
        sweep_run.finish(summary, best_cfg, registered_model_name(cfg), trials_scatter_png(summary, space),
                         status="KILLED" if summary.interrupted else "FINISHED")
    return summary


def _trial_dirname(trial) -> str:
    """Short, path-safe trial dirs (Tune's default embeds every swept key=value)."""
    return f"trial_{trial.trial_id}"


def _summarize(grid, plan: SweepPlan, parent_run_id: str | None, watch: Any = None) -> SweepSummary:
    # Tune's trial objects (ids of trials that never reported) are only on its analysis object, in the
    # grid's order; ResultGrid has no public view of them.
    tune_trials = list(getattr(getattr(grid, "_experiment_analysis", None), "trials", []))
    trials = []
    for index, result in enumerate(grid):
        tune_trial = tune_trials[index] if index < len(tune_trials) else None
        frame = result.metrics_dataframe
        history = frame.to_dict("records") if frame is not None else []
        last = result.metrics or {}
        trial_id = str(last.get("trial_id") or (history[-1].get("trial_id") if history else "") or
                       getattr(tune_trial, "trial_id", None) or  # one that never started has no path
                       os.path.basename(str(result.path)).removeprefix("trial_") or f"trial-{index}")
        if not history and last:
            history = [last]
        trials.append(summarize_trial(trial_id, result.config or {}, history, plan.settings.metric,
                                      plan.cfg.train.steps, result.error, plan.space.params,
                                      ended=watch is None or watch.ended(getattr(tune_trial, "trial_id", trial_id))))
    return SweepSummary(name=plan.name, metric=plan.settings.metric, mode=plan.settings.mode or "min",
                        scheduler=plan.settings.scheduler, search=plan.settings.search, trials=trials,
                        parent_run_id=parent_run_id)


def load_space(path: str) -> tuple[SearchSpace, str]:
    """The space and its text (logged verbatim on the parent run)."""
    from pathlib import Path

    space = SearchSpace.from_file(path)
    return space, Path(path).read_text()


__all__ = ["SweepPlan", "SweepSettings", "SpaceError", "load_space", "plan_sweep", "run_sweep"]
