"""MLflow for sweeps: one parent run per sweep (driver), one child run per trial (trial actor).

The parent holds what describes the sweep as a whole: the search space and scheduler as params,
the base config and the space file, and at the end the trials table, a scatter plot of the metric
against every swept key, the best trial's config and metric, and -- when the best trial registered
a model -- ``vton.best_model_version`` = its registered version and ``vton.best_model_name`` = the
registered model, which `vton promote MODEL --from-sweep RUN_ID` reads (orchestrator/registry.py).

A child run is created by the trial itself (tag ``mlflow.parentRunId``) and handed to the Train
run's rank-0 tracker as ``tracking.run_id``, so every PBT generation of a trial logs into the same
run; at each generation the trial records its overrides and swept values (``hparam/<key>``
metrics at the step it continued from), which makes PBT's schedule visible as curves.
"""

from __future__ import annotations

import csv
import io
import os
import time
from typing import TYPE_CHECKING, Any, Mapping

from orchestrator.config import Config

if TYPE_CHECKING:
    from tune.results import SweepSummary
    from tune.space import SearchSpace
    from tune.spec import TrialSpec

#: Tags on the parent run naming the best trial's registered model version and model name (the
#: contract orchestrator/registry.py reads as SWEEP_BEST_VERSION_TAG / SWEEP_BEST_MODEL_TAG).
BEST_MODEL_VERSION_TAG = "vton.best_model_version"
BEST_MODEL_NAME_TAG = "vton.best_model_name"
PARENT_RUN_TAG = "mlflow.parentRunId"  # MLflow's own nesting tag (the UI groups children under it)
SWEEP_TAG = "vton.sweep"
EARLY_STOPPED_TAG = "vton.early_stopped"  # a trial the scheduler stopped (ASHA): FINISHED, not a crash
TRIAL_TAG = "vton.trial"  # "<sweep>/<trial id>": how a restarted trial finds its child run again


def tracking_uri(cfg: Config) -> str:
    uri = cfg.tracking.uri or os.environ.get("MLFLOW_TRACKING_URI", "")
    if not uri:
        from orchestrator.config import ConfigError

        raise ConfigError("tracking.uri is empty and MLFLOW_TRACKING_URI is not set; start the stack "
                          "(`vton stack up`) or set tracking.enabled=false")
    return uri


class SweepRun:
    """The parent run, driven from the sweep's driver process."""

    def __init__(self, uri: str, experiment_id: str, run_id: str) -> None:
        from mlflow import MlflowClient

        self.uri, self.experiment_id, self.run_id = uri, experiment_id, run_id
        self.client = MlflowClient(uri)

    @classmethod
    def start(cls, cfg: Config, sweep: str, space: "SearchSpace", params: Mapping[str, Any],
              space_text: str) -> "SweepRun":
        from mlflow import MlflowClient

        uri = tracking_uri(cfg)
        client = MlflowClient(uri)
        experiment = client.get_experiment_by_name(cfg.tracking.experiment)
        experiment_id = experiment.experiment_id if experiment else client.create_experiment(cfg.tracking.experiment)
        run = client.create_run(experiment_id, run_name=sweep, tags={
            SWEEP_TAG: sweep, "vton.kind": "sweep", "vton.recipe": cfg.model.recipe,
            "vton.scheduler": str(params.get("scheduler", "")),
        })
        self = cls(uri, experiment_id, run.info.run_id)
        values = {**{f"space.{k}": v for k, v in space.as_text().items()}, **params}
        self.client.log_batch(self.run_id, params=[_param(k, v) for k, v in sorted(values.items())])
        self.client.log_text(self.run_id, space_text, "sweep/space.yaml")
        self.client.log_text(self.run_id, cfg.to_yaml(), "sweep/base_config.yaml")
        return self

    def trial_tracking(self) -> dict[str, str]:
        """What a trial needs to create its child run."""
        return {"uri": self.uri, "experiment_id": self.experiment_id, "parent_run_id": self.run_id}

    def finish(self, summary: "SweepSummary", best_config: Config | None, model_name: str,
               plot_png: bytes | None, status: str = "FINISHED") -> None:
        from mlflow.entities import Metric

        client, run_id = self.client, self.run_id
        counts = summary.counts()
        now = int(time.time() * 1000)
        metrics = [Metric(f"trials_{k}", float(v), now, 0) for k, v in counts.items()]
        best = summary.best_trial()
        if best is not None and best.metric is not None:
            metrics.append(Metric(f"best/{summary.metric}", float(best.metric), now, best.step))
            client.set_tag(run_id, "vton.best_trial", best.trial_id)
            if best.mlflow_run_id:
                client.set_tag(run_id, "vton.best_run_id", best.mlflow_run_id)
            if best.model_version:
                client.set_tag(run_id, BEST_MODEL_VERSION_TAG, best.model_version)
                client.set_tag(run_id, BEST_MODEL_NAME_TAG, model_name)
        if metrics:
            client.log_batch(run_id, metrics=metrics)
        if best_config is not None:
            client.log_text(run_id, best_config.to_yaml(), "best/config.yaml")
        client.log_text(run_id, summary_csv(summary), "sweep/trials.csv")
        if plot_png:
            _log_bytes(client, run_id, plot_png, "sweep/trials.png")
        self._close_children({t.trial_id: t.status for t in summary.trials})
        client.set_terminated(run_id, status)

    def _close_children(self, trial_status: Mapping[str, str]) -> None:
        """Close the child runs Tune left RUNNING (their Train worker was torn down, not finished):

        - a trial that trained to the end (it reported and registered, then Tune moved on) is FINISHED;
        - a trial the scheduler stopped early (ASHA) is FINISHED too, tagged ``vton.early_stopped``:
          the scheduler's decision, not a crash, and its metrics up to then are complete;
        - a trial that raised is FAILED; anything else (a sweep interrupted mid-trial) is KILLED."""
        for run in self.children():
            status = trial_status.get(run.data.tags.get("vton.trial_id", ""))
            if status == "stopped":  # also when its worker closed the run itself before being stopped
                self.client.set_tag(run.info.run_id, EARLY_STOPPED_TAG, "true")
            if run.info.status == "RUNNING":
                final = {"completed": "FINISHED", "stopped": "FINISHED", "error": "FAILED"}.get(status or "", "KILLED")
                self.client.set_terminated(run.info.run_id, final)

    def children(self) -> list:
        return self.client.search_runs([self.experiment_id],
                                       filter_string=f"tags.`{PARENT_RUN_TAG}` = '{self.run_id}'",
                                       max_results=1000)


# -------------------------------------------------------------------------------- trial side


def attach_child_run(spec: "TrialSpec", trial_id: str) -> str:
    """This trial's child run: found by its tag when the trial restarts (PBT), else created."""
    from mlflow import MlflowClient

    tracking = spec.tracking
    client = MlflowClient(tracking["uri"])
    tag = f"{spec.sweep}/{trial_id}"
    found = client.search_runs([tracking["experiment_id"]], filter_string=f"tags.`{TRIAL_TAG}` = '{tag}'",
                               max_results=1)
    if found:
        return found[0].info.run_id
    run = client.create_run(tracking["experiment_id"], run_name=f"{spec.sweep}-{trial_id}", tags={
        PARENT_RUN_TAG: tracking["parent_run_id"], SWEEP_TAG: spec.sweep, TRIAL_TAG: tag,
        "vton.trial_id": trial_id, "vton.recipe": str(spec.base_config.get("model", {}).get("recipe", "")),
    })
    return run.info.run_id


def log_generation_start(spec: "TrialSpec", run_id: str, generation: int, overrides: list[str],
                         hparams: Mapping[str, float], step: int) -> None:
    """Record what this generation of the trial trains with, at the step it starts from."""
    from mlflow import MlflowClient
    from mlflow.entities import Metric

    client = MlflowClient(spec.tracking["uri"])
    client.set_tag(run_id, "vton.generation", str(generation))
    client.log_text(run_id, "\n".join(overrides) + "\n", f"tune/generation_{generation}_overrides.txt")
    now = int(time.time() * 1000)
    if hparams:
        client.log_batch(run_id, metrics=[Metric(k, float(v), now, step) for k, v in hparams.items()])


# -------------------------------------------------------------------------------- helpers


def summary_csv(summary: "SweepSummary") -> str:
    keys = sorted({k for t in summary.trials for k in t.config})
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["trial_id", "status", summary.metric, "step", "generations", "model_version", *keys])
    for t in summary.trials:
        writer.writerow([t.trial_id, t.status, t.metric, t.step, t.generations, t.model_version or "",
                         *[t.config.get(k, "") for k in keys]])
    return out.getvalue()


def _param(key: str, value: Any):
    from mlflow.entities import Param

    return Param(key, str(value)[:6000])


def _log_bytes(client, run_id: str, data: bytes, artifact_path: str) -> None:
    import tempfile
    from pathlib import Path

    directory, _, name = artifact_path.rpartition("/")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / name
        path.write_bytes(data)
        client.log_artifact(run_id, str(path), directory or None)
