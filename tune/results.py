"""What a sweep produced, per trial, read back from Tune's results: the summary `vton tune` prints
(and with ``--json`` emits), the parent run's table and plot are drawn from, and the best trial.

The best trial is the best *last* reported value among trials that trained to ``train.steps``:
ASHA stops trials early, and a trial stopped at step 4 is not comparable with one at step 400
(only when no trial finished are all trials compared).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Iterable, Mapping

#: Report keys the loop adds after a restore (see GanLoop._apply_configured_lrs).
_RESUME = "resume/"


@dataclass
class TrialSummary:
    trial_id: str
    #: "completed" (reached train.steps) | "stopped" (early, by the scheduler) | "error" |
    #: "interrupted" (the sweep was stopped, e.g. Ctrl-C, before the trial ended)
    status: str
    config: dict[str, Any]  # the swept values (PBT: the last generation's)
    metric: float | None
    step: int
    generations: int = 1
    model_version: str | None = None
    mlflow_run_id: str | None = None
    error: str | None = None
    #: One entry per generation that started from a checkpoint (PBT): the run it continued from,
    #: the step, the learning rates the optimizers had after loading, and the checkpoint's own.
    restores: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class SweepSummary:
    name: str
    metric: str
    mode: str
    scheduler: str
    search: str
    trials: list[TrialSummary]
    parent_run_id: str | None = None

    def best_trial(self) -> TrialSummary | None:
        scored = [t for t in self.trials if t.metric is not None and math.isfinite(t.metric)]
        completed = [t for t in scored if t.status == "completed"]
        pool = completed or scored
        if not pool:
            return None
        pick = min if self.mode == "min" else max
        return pick(pool, key=lambda t: t.metric)

    @property
    def interrupted(self) -> bool:
        """Whether the sweep ended before its trials did (Ctrl-C): its results are partial."""
        return any(t.status == "interrupted" for t in self.trials)

    def counts(self) -> dict[str, int]:
        out = {"completed": 0, "stopped": 0, "error": 0, "interrupted": 0}
        for t in self.trials:
            out[t.status] = out.get(t.status, 0) + 1
        return out

    def to_dict(self) -> dict[str, Any]:
        """Every trial, and the winner at the top level (what a pipeline reads to promote it)."""
        best = self.best_trial()
        return {**asdict(self), "best_trial": best.trial_id if best else None,
                "best_config": best.config if best else None, "best_value": best.metric if best else None,
                "best_model_version": best.model_version if best else None}

    def table(self) -> str:
        keys = sorted({k for t in self.trials for k in t.config})
        best = self.best_trial()
        lines = [f"sweep {self.name}: {self.scheduler} + {self.search} search, {self.metric} ({self.mode})"]
        for t in sorted(self.trials, key=lambda t: t.trial_id):
            values = "  ".join(f"{k}={_short(t.config.get(k))}" for k in keys)
            metric = f"{t.metric:.4f}" if t.metric is not None else "-"
            mark = "*" if best is not None and t.trial_id == best.trial_id else " "
            extra = f"  gens={t.generations}" if t.generations > 1 else ""
            version = f"  model v{t.model_version}" if t.model_version else ""
            lines.append(f" {mark} {t.trial_id:14s} {t.status:9s} step {t.step:<6d} {self.metric}={metric}  "
                         f"{values}{extra}{version}")
        for t in sorted(self.trials, key=lambda t: t.trial_id):
            if t.error:  # the cause, not only Tune's pointer to an error file on some node
                lines.append(f"   {t.trial_id} failed: " + _last_lines(t.error, 6).replace("\n", "\n     "))
        return "\n".join(lines)


def _last_lines(text: str, n: int) -> str:
    return "\n".join(text.strip().splitlines()[-n:])


def summarize_trial(trial_id: str, config: Mapping[str, Any], history: Iterable[Mapping[str, Any]],
                    metric: str, steps: int, error: BaseException | str | None, space_keys: Iterable[str],
                    ended: bool = True) -> TrialSummary:
    """One trial from its reported results, oldest first (Tune's per-trial result history).
    ``ended``: Tune terminated the trial (it finished, errored or the scheduler stopped it); a trial
    that had not ended when the sweep stopped is "interrupted", not "stopped"."""
    rows = [dict(r) for r in history]
    last = rows[-1] if rows else {}
    step = int(_number(last.get("step")) or 0)
    value = _number(last.get(metric))
    status = "error" if error else ("completed" if step >= steps else ("stopped" if ended else "interrupted"))
    restores, seen = [], set()
    for row in rows:
        generation = int(_number(row.get("generation")) or 0)
        if generation == 0 or generation in seen or _number(row.get(f"{_RESUME}step")) is None:
            continue
        seen.add(generation)
        restores.append({
            "generation": generation,
            "from": row.get(f"{_RESUME}from"),
            "step": int(_number(row.get(f"{_RESUME}step")) or 0),
            "lr": _by_network(row, f"{_RESUME}lr/"),
            "checkpoint_lr": _by_network(row, f"{_RESUME}checkpoint_lr/"),
            "config": {k: _number(row.get(f"hparam/{k}")) for k in space_keys
                       if _number(row.get(f"hparam/{k}")) is not None},
        })
    return TrialSummary(
        trial_id=trial_id, status=status, config={k: _plain(config.get(k)) for k in space_keys},
        metric=value, step=step, generations=1 + max([0, *(int(_number(r.get("generation")) or 0) for r in rows)]),
        model_version=_text(last.get("model_version")), mlflow_run_id=_text(last.get("mlflow_run_id")),
        error=str(error)[-2000:] if error else None, restores=restores,
    )


def _by_network(row: Mapping[str, Any], prefix: str) -> dict[str, float]:
    return {k.removeprefix(prefix): _number(v) for k, v in row.items()
            if k.startswith(prefix) and _number(v) is not None}


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _text(value: Any) -> str | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    text = str(value)
    return text if text and text.lower() not in ("none", "nan") else None


def _plain(value: Any) -> Any:
    if hasattr(value, "item") and not isinstance(value, (list, tuple, dict)):
        return value.item()
    return value


def _short(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)
