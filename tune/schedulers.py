"""ASHA | PBT schedulers and random | Optuna search, all timed in training steps.

The time attribute is ``step`` (the G optimizer step the loop reports with every checkpoint),
not Tune's ``training_iteration``: a report happens every ``checkpoint.every_n_steps`` steps and
a PBT generation starts mid-run, so only the step means the same thing in every trial.
"""

from __future__ import annotations

import importlib.util
from typing import Any

from tune.space import SearchSpace, SpaceError

TIME_ATTR = "step"
SCHEDULERS = ("asha", "pbt")
SEARCHES = ("random", "optuna")
#: Direction of the metrics the loop's held-out evaluation reports (recipes may add others).
METRIC_MODES = {"l1": "min", "loss": "min", "fid": "min", "kid": "min", "lpips": "min",
                "ssim": "max", "ms_ssim": "max", "psnr": "max", "pixel_acc": "max", "miou": "max", "is": "max"}


def infer_mode(metric: str, mode: str | None) -> str:
    """``mode`` if given, else the known direction of ``metric`` (val/l1 -> min, val/ssim -> max)."""
    if mode is not None:
        if mode not in ("min", "max"):
            raise SpaceError(f"--mode {mode!r}: expected min or max")
        return mode
    leaf = metric.rsplit("/", 1)[-1].lower()
    for name, direction in METRIC_MODES.items():
        if leaf == name or leaf.startswith(name) or metric.startswith(f"{name}/"):
            return direction
    raise SpaceError(f"--metric {metric}: direction unknown; pass --mode min or --mode max")


def optuna_available() -> bool:
    return importlib.util.find_spec("optuna") is not None


def check_search(search: str, scheduler: str, space: SearchSpace) -> None:
    """Combinations refused on the driver, before Ray is touched."""
    if scheduler not in SCHEDULERS:
        raise SpaceError(f"--scheduler {scheduler!r}: expected one of {', '.join(SCHEDULERS)}")
    if search not in SEARCHES:
        raise SpaceError(f"--search {search!r}: expected one of {', '.join(SEARCHES)}")
    if scheduler == "pbt":
        space.check_pbt()
        if search != "random":
            raise SpaceError("--scheduler pbt samples the initial population itself and then perturbs it; "
                             "use --search random with it (Optuna goes with --scheduler asha)")
    if search == "optuna":
        space.check_optuna()
        if not optuna_available():
            raise SpaceError("--search optuna needs the 'optuna' package, which is not installed in this "
                             "environment (pip install optuna); --search random works without it")


def build_scheduler(scheduler: str, space: SearchSpace, max_steps: int, grace_period: int,
                    reduction_factor: float, perturbation_interval: int, pbt_sync: bool) -> Any:
    """Metric and mode come from TuneConfig (Tune hands them to the scheduler)."""
    if scheduler == "asha":
        from ray.tune.schedulers import ASHAScheduler

        return ASHAScheduler(time_attr=TIME_ATTR, max_t=max_steps, grace_period=grace_period,
                             reduction_factor=reduction_factor)
    from ray.tune.schedulers import PopulationBasedTraining

    return PopulationBasedTraining(
        time_attr=TIME_ATTR, perturbation_interval=perturbation_interval,
        hyperparam_mutations={key: p.mutation() for key, p in space.params.items()},
        synch=pbt_sync,
    )


def build_search(search: str, max_concurrent: int) -> Any:
    """None for random search (Tune's default generator; concurrency via TuneConfig)."""
    if search == "random":
        return None
    from ray.tune.search import ConcurrencyLimiter
    from ray.tune.search.optuna import OptunaSearch

    return ConcurrencyLimiter(OptunaSearch(), max_concurrent=max_concurrent)
