"""One Tune trial = one (or, under PBT, a chain of) Ray Train V2 run(s) of the trial's config.

Ray Train V2 has no ``Tuner(trainer)``: a trial is a function that builds and fits its own
``TorchTrainer`` (``orchestrator.launch.build_trainer``, the same one `vton train` fits) with the
trial's overrides. Reports travel worker -> Train controller -> :class:`ReportToTune` -> a Ray
queue -> this function -> ``tune.report``. Ray's own ``TuneReportCallback`` does the same but hands
Tune metrics only (the checkpoint path as a metric), and PBT can only exploit a trial whose Tune
result carries a checkpoint; here, when the scheduler needs one, the Train checkpoint is reported
to Tune too (Tune copies it into the sweep's storage, so the donor's own retention cannot delete it
before a receiver loads it).

PBT: a trial that (re)starts from a Tune checkpoint -- a donor's after an exploit, or its own after
a pause -- runs a *new* Train run ``<sweep>-<trial>-gen<k>`` seeded with that checkpoint. Reusing
the old name would make Train resume that run's own latest checkpoint, i.e. silently ignore the
exploit. The loop re-applies the trial's configured learning rates after loading
(``GanLoop._apply_configured_lrs``); loss weights always come from the config. All generations log
into the trial's one MLflow child run (``tracking.run_id``).
"""

from __future__ import annotations

import threading
from pathlib import PurePosixPath
from typing import Any

from ray.train import UserCallback

from orchestrator.config import config_from_dict, override_config
from tune.spec import TrialSpec

_POLL_S = 0.5  # how often the trial looks at its queue and at the fit thread


def run_name(sweep: str, trial_id: str, generation: int) -> str:
    return f"{sweep}-{trial_id}-gen{generation}"


def next_generation(train_storage: str, sweep: str, trial_id: str) -> int:
    """1 + the highest generation of this trial found in storage: works across trial actors and
    nodes (a paused trial comes back in a new actor, possibly elsewhere)."""
    from pyarrow import fs

    from orchestrator.checkpoints.storage import storage_location

    path, filesystem = storage_location(train_storage)
    filesystem = filesystem or fs.LocalFileSystem()
    prefix = run_name(sweep, trial_id, 0)[:-1]  # "<sweep>-<trial>-gen"
    generations = [0]
    for info in filesystem.get_file_info(fs.FileSelector(path, allow_not_found=True)):
        name = PurePosixPath(info.path).name
        if info.type == fs.FileType.Directory and name.startswith(prefix) and name[len(prefix):].isdigit():
            generations.append(int(name[len(prefix):]))
    return max(generations) + 1


class ReportToTune(UserCallback):
    """Runs in the Train controller: puts rank 0's report (scalars only) and, if asked, its
    checkpoint on the trial's queue. The queue holds one item, so Train waits for Tune to take the
    previous report, as with Ray's TuneReportCallback (a STOP decision then lands promptly)."""

    def __init__(self, queue, with_checkpoints: bool) -> None:
        self.queue = queue
        self.with_checkpoints = with_checkpoints

    def after_report(self, run_context, metrics: list[dict[str, Any]], checkpoint) -> None:
        values = {k: v for k, v in metrics[0].items() if isinstance(v, (int, float, str))}  # no dicts, no None
        if checkpoint is not None:
            values["checkpoint_path"] = checkpoint.path
        self.queue.put({"metrics": values, "checkpoint": checkpoint if self.with_checkpoints else None})


def run_trial(config: dict[str, Any], spec: TrialSpec) -> None:
    """The Tune trainable: fit this trial's TorchTrainer, forwarding its reports to Tune."""
    from ray import tune
    from ray.util.queue import Empty, Queue

    from orchestrator.jobs.launch import build_trainer
    from tune.tracking import attach_child_run, log_generation_start

    trial_id = tune.get_context().get_trial_id()
    restore = tune.get_checkpoint()
    generation = 0 if restore is None else next_generation(spec.train_storage, spec.sweep, trial_id)
    name = run_name(spec.sweep, trial_id, generation)
    overrides = spec.space.overrides(config)
    child = attach_child_run(spec, trial_id) if spec.tracking else None
    cfg = override_config(config_from_dict(spec.base_config), [
        *overrides, f"name={name}", f"checkpoint.storage_path={spec.train_storage}",
        *([f"tracking.run_id={child}"] if child else []),
    ])
    print(f"[vton] trial {trial_id} generation {generation}: Train run {name}"
          f"{' from a Tune checkpoint' if restore else ''}; {' '.join(overrides)}", flush=True)
    hparams = {f"hparam/{k}": float(v) for k, v in config.items()
               if k in spec.space.params and isinstance(v, (int, float)) and not isinstance(v, bool)}

    queue = Queue(maxsize=1, actor_options={"num_cpus": 0})
    trainer = build_trainer(cfg, callbacks=[ReportToTune(queue, spec.with_checkpoints)], init_checkpoint=restore)
    outcome: dict[str, BaseException] = {}

    def fit() -> None:
        try:
            trainer.fit()
        except BaseException as exc:  # noqa: BLE001 - re-raised in the trial's thread below
            outcome["error"] = exc

    thread = threading.Thread(target=fit, name=f"fit-{name}", daemon=True)
    thread.start()
    first, final = True, None
    while True:
        try:
            item = queue.get(timeout=_POLL_S)
        except Empty:
            if thread.is_alive() or not queue.empty():
                continue
            break
        metrics = {**item["metrics"], **hparams, "generation": generation, "train_run": name,
                   **({"mlflow_run_id": child} if child else {})}
        if first and child:
            log_generation_start(spec, child, generation, overrides, hparams, int(metrics.get("resume/step", 0)))
            first = False
        if int(metrics.get("step", 0)) >= cfg.train.steps:
            # Held back until Train has finished (model registered, MLflow run closed): Tune stops a
            # trial as soon as it sees the last step, which would cut those last seconds short.
            final = (metrics, item["checkpoint"])
            continue
        tune.report(metrics, checkpoint=_tune_checkpoint(item["checkpoint"]))
    thread.join()
    if "error" in outcome:
        raise outcome["error"]
    if final is not None:
        tune.report(final[0], checkpoint=_tune_checkpoint(final[1]))


def _tune_checkpoint(checkpoint):
    if checkpoint is None:
        return None
    from ray import tune

    return tune.Checkpoint(path=checkpoint.path, filesystem=checkpoint.filesystem)
