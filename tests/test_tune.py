"""`vton tune`: search-space parsing (fast), the loop's learning rates after a PBT restore (fast,
no Ray), and an ASHA and a PBT sweep of the unet_sa recipe on the real stack (S3 + MLflow + Ray).

The sweeps run `vton tune` as a subprocess: its driver joins the stack's Ray head exactly as a user's
would, and the test reads what it printed (``VTON_SWEEP {json}``) and what it logged to MLflow.
Sizes are the smallest that still exercise every path: 64x48 images, ngf=ndf=8, 4 steps with a
checkpoint (and a held-out evaluation) every 2, one worker of 0.25 CPU per trial.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from plugins import data as data_plugin
from plugins.data import local_shards

from orchestrator.config import ConfigError, load_config, override_config
from tune.results import summarize_trial, SweepSummary
from tune.schedulers import check_search, infer_mode, optuna_available
from tune.space import SearchSpace, SpaceError, yaml_scalar
from tune.sweep import SweepSettings, plan_sweep
from tune.tracking import BEST_MODEL_NAME_TAG, BEST_MODEL_VERSION_TAG

REPO = Path(__file__).resolve().parents[1]
VTON = str(Path(sys.executable).parent / "vton")
DEMO = REPO / "configs" / "unet_sa" / "demo.yaml"
SWEEP_PREFIX = "VTON_SWEEP "


def demo(*overrides: str):
    return load_config(DEMO, ["train.eval_every=50", *overrides])


# ----------------------------------------------------------------------------------- space


@pytest.mark.parametrize("text, message", [
    ("logunifrom(1, 30)", "unknown distribution 'logunifrom'"),
    ("loguniform(0, 30)", "loguniform needs low > 0"),
    ("uniform(3, 1)", "low must be below high"),
    ("randint(1.5, 4)", "randint bounds must be integers"),
    ("choice([])", "expected choice([a, b, ...])"),
    ("choice(1, 2)", "expected choice([a, b, ...])"),
    ("uniform(a, b)", "are not literals"),
    ("30", "cannot read '30'"),
    (3.0, "got float 3.0"),
])
def test_space_parsing_errors_name_the_key(text, message):
    with pytest.raises(SpaceError) as err:
        SearchSpace.from_mapping({"loss.weights.vgg": text}, source="space.yaml")
    assert str(err.value).startswith("space.yaml: 'loss.weights.vgg'")
    assert message in str(err.value)


@pytest.mark.parametrize("key, text, message", [
    ("train.lr_dd", "loguniform(1e-5, 1e-3)", "unknown key 'train.lr_dd' (did you mean 'lr_d'?)"),
    ("loss.weights.vgg", "uniform(-1, 1)", "loss.weights.vgg: got -1.0; must be >= 0"),
    ("loss.weights.perceptual", "uniform(0, 1)", "unknown term(s) ['perceptual'] for recipe 'unet_sa'"),
    ("model.width", "choice([8, 16])", "unknown option(s) ['width']"),
    ("train.d_steps_per_g", "choice([1, 'two'])", "expected an integer"),
])
def test_space_keys_and_values_are_checked_against_the_config_and_recipe(key, text, message):
    space = SearchSpace.from_mapping({key: text}, source="space.yaml")
    with pytest.raises(SpaceError) as err:
        space.validate(demo())
    assert str(err.value).startswith(f"space.yaml: '{key}' with value")
    assert message in str(err.value)


@pytest.mark.parametrize("key, reason", [
    ("name", "names every trial's run"), ("tracking.experiment", "owns MLflow runs"),
    ("train.steps", "schedulers' budget"), ("ray.num_workers", "trial resources"),
])
def test_keys_the_sweep_owns_are_refused(key, reason):
    with pytest.raises(SpaceError, match=reason):
        SearchSpace.from_mapping({key: "choice([1, 2])"})


def test_a_valid_space_in_nested_yaml_reaches_the_trial_as_command_line_overrides(tmp_path):
    path = tmp_path / "space.yaml"
    path.write_text("loss.weights.vgg: loguniform(1, 30)\ntrain:\n  lr_d: loguniform(1e-5, 1e-3)\n"
                    "  d_steps_per_g: choice([1, 2])\ndata:\n  image_size: grid([[64, 48], [128, 96]])\n")
    space = SearchSpace.from_file(path)
    assert space.as_text() == {"loss.weights.vgg": "loguniform(1, 30)", "train.lr_d": "loguniform(1e-05, 0.001)",
                               "train.d_steps_per_g": "choice([1, 2])",
                               "data.image_size": "grid([[64, 48], [128, 96]])"}
    space.validate(demo())
    # 1e-05 must stay a float through YAML 1.1 (which reads "1e-05" as a string).
    overrides = space.overrides({"loss.weights.vgg": 2.5, "train.lr_d": 1e-05, "train.d_steps_per_g": 2,
                                 "data.image_size": [128, 96]})
    assert overrides[1] == "train.lr_d=1.0e-05" and yaml_scalar(1e-05) == "1.0e-05"
    cfg = override_config(demo(), overrides)
    assert cfg.train.lr_d == 1e-05 and cfg.loss.weights["vgg"] == 2.5 and cfg.train.d_steps_per_g == 2
    assert cfg.data.image_size == (128, 96)


def test_scheduler_and_search_combinations_are_refused_before_ray():
    weights = SearchSpace.from_mapping({"loss.weights.l1": "loguniform(1, 30)"})
    with pytest.raises(SpaceError, match="'model.ngf' cannot be swept with --scheduler pbt"):
        check_search("random", "pbt", SearchSpace.from_mapping({"model.ngf": "choice([8, 16])"}))
    with pytest.raises(SpaceError, match="use --search random with it"):
        check_search("optuna", "pbt", weights)
    with pytest.raises(SpaceError, match=r"grid\(...\) cannot be used with --search optuna"):
        check_search("optuna", "asha", SearchSpace.from_mapping({"train.lr_d": "grid([1e-4, 2e-4])"}))
    if not optuna_available():
        with pytest.raises(SpaceError, match="needs the 'optuna' package, which is not installed"):
            check_search("optuna", "asha", weights)
    assert infer_mode("val/l1", None) == "min" and infer_mode("val/ssim", None) == "max"
    with pytest.raises(SpaceError, match="direction unknown"):
        infer_mode("val/sharpness", None)


def test_plan_refuses_a_metric_tune_would_never_see_and_a_pbt_that_never_perturbs():
    space = SearchSpace.from_mapping({"train.lr_d": "loguniform(1e-5, 1e-3)"})
    cfg = load_config(DEMO)  # evaluates every 100 steps, checkpoints every 50
    with pytest.raises(ConfigError, match="set train.eval_every to a divisor of checkpoint.every_n_steps"):
        plan_sweep(cfg, space, SweepSettings())
    with pytest.raises(ConfigError, match="or PBT never perturbs"):
        plan_sweep(demo("train.steps=50"), space, SweepSettings(scheduler="pbt"))
    plan = plan_sweep(demo(), space, SweepSettings(scheduler="pbt", name="s1"))
    assert plan.settings.mode == "min" and plan.settings.perturbation_interval == 50


def test_best_trial_is_the_best_among_trials_that_trained_to_the_end():
    def trial(tid, step, value):
        return summarize_trial(tid, {"k": 1.0}, [{"step": step, "val/l1": value}], "val/l1", 8, None, ["k"])

    summary = SweepSummary("s", "val/l1", "min", "asha", "random",
                           [trial("a", 4, 0.10), trial("b", 8, 0.30), trial("c", 8, 0.20)])
    assert [t.status for t in summary.trials] == ["stopped", "completed", "completed"]
    assert summary.best_trial().trial_id == "c"  # a's 0.10 at step 4 is not comparable


# ------------------------------------------------------------ learning rates after a restore


def test_restore_applies_this_runs_configured_lr_but_a_plain_resume_keeps_the_optimizers(tmp_path_factory):
    """PBT's lesson, without Ray: the donor's optimizer state carries the donor's lr; the receiver's
    configured lr must win. A plain resume (same configured lr) keeps the optimizer's own value."""
    from orchestrator.train.loop import GanLoop, LoopHooks, WorkerContext

    root = local_shards(tmp_path_factory.mktemp("tune-lr"), n=8, size=(64, 48), seed=4)
    base = ["data.val_manifest=", "data.loader_workers=0", "data.augment=false", "data.batch_size=2",
            "model.ngf=8", "model.ndf=8", "tracking.enabled=false", "precision.mode=fp32", "train.grad_accum=1",
            "train.log_every=1000", "train.sample_every=0", "checkpoint.every_n_steps=1",
            f"data.manifest=file://{root}/shards/train/manifest.json"]
    saved: list[Path] = []

    def keep(metrics, directory):
        saved.append(Path(shutil.copytree(directory, root / f"ckpt{len(saved)}")))

    def lowered_by_a_scheduler(name, strategy, step):
        strategy.set_lr(name, 5e-5)  # what ReduceLROnPlateau would do: the optimizer's lr, not the config's

    donor = load_config(DEMO, [*base, "train.steps=1", "train.lr_d=1e-4"])
    GanLoop(donor, WorkerContext(report=keep), LoopHooks(before_step=lowered_by_a_scheduler)).run()

    reports: list[dict] = []
    receiver = override_config(donor, ["train.steps=2", "train.lr_d=3e-4", "name=receiver"])
    loop = GanLoop(receiver, WorkerContext(restore_dir=saved[0], report=lambda m, d: reports.append(m)))
    assert loop.position.step == 1
    assert loop.strategy.optimizer("D").param_groups[0]["lr"] == 3e-4
    assert loop.strategy.optimizer("G").param_groups[0]["lr"] == 5e-5  # lr_g unchanged in the config: kept
    loop.run()
    assert reports[-1]["resume/lr/D"] == 3e-4 and reports[-1]["resume/checkpoint_lr/D"] == 1e-4
    assert reports[-1]["resume/step"] == 1 and reports[-1]["resume/from"] == donor.name
    assert reports[-1]["lr/D"] == 3e-4

    resumed = GanLoop(override_config(donor, ["train.steps=2"]), WorkerContext(restore_dir=saved[0]))
    assert resumed.strategy.optimizer("D").param_groups[0]["lr"] == 5e-5
    assert "resume/checkpoint_lr/D" not in resumed.resume_metrics


# ---------------------------------------------------------------------------- on the stack


@pytest.fixture(scope="module")
def s3_shards(stack, tmp_path_factory) -> str:
    return data_plugin.s3_shards(tmp_path_factory.mktemp("tune-shards"), stack.bucket, "tune", n=16, seed=5)


def _overrides(prefix: str, name: str, register: bool) -> list[str]:
    return [
        f"name={name}", f"data.manifest={prefix}/train/manifest.json", f"data.val_manifest={prefix}/test/manifest.json",
        "data.batch_size=2", "data.loader_workers=0", "model.ngf=8", "model.ndf=8", "precision.mode=fp32",
        "train.steps=4", "train.grad_accum=1", "train.log_every=2", "train.eval_every=2", "train.eval_batches=1",
        "train.sample_every=0", "checkpoint.every_n_steps=2", "checkpoint.storage_path=s3://vton/checkpoints",
        "tracking.experiment=vton-tests", f"tracking.model_name=vton-test-{name}", "tracking.system_metrics=false",
        f"tracking.register_model={str(register).lower()}", "ray.num_workers=1", "ray.cpus_per_worker=0.25",
        "ray.threads_per_worker=1",
    ]


def _failure_report(out: subprocess.CompletedProcess) -> str:
    """The trials' own tracebacks first (Tune prints only where its error files are)."""
    errors = [Path(p).read_text()[-2500:] for p in sorted(set(re.findall(r"Error file: (\S+)", out.stdout + out.stderr)))
              if Path(p).is_file()]
    return "\n".join(errors[:2]) + "\n--- stderr ---\n" + out.stderr[-3000:] + "\n--- stdout ---\n" + out.stdout[-3000:]


def _text(output: bytes | str | None) -> str:
    return output.decode(errors="replace") if isinstance(output, bytes) else output or ""


def _sweep(tmp_path: Path, space: str, prefix: str, name: str, *options: str, register: bool,
           driver_env: dict[str, str] | None = None, trials: int = 4) -> dict:
    space_file = tmp_path / "space.yaml"
    space_file.write_text(space)
    try:
        command = [VTON, "tune", str(DEMO), "--space", str(space_file), "--trials", str(trials),
                   "--trial-cpus", "0.25", "--json", "--name", name, *options, *_overrides(prefix, name, register)]
        out = subprocess.run(command, capture_output=True, text=True, timeout=480, cwd=REPO,
                             env={**os.environ, **(driver_env or {})})
    except subprocess.TimeoutExpired as exc:  # Tune's status tables say what the trials were waiting for
        pytest.fail(f"vton tune ran past {exc.timeout}s\n--- stderr ---\n{_text(exc.stderr)[-6000:]}"
                    f"\n--- stdout ---\n{_text(exc.stdout)[-6000:]}")
    assert out.returncode == 0, _failure_report(out)
    line = next(line for line in reversed(out.stdout.splitlines()) if line.startswith(SWEEP_PREFIX))
    return json.loads(line[len(SWEEP_PREFIX):])


def _children(client, parent) -> list:
    return client.search_runs([parent.info.experiment_id],
                              filter_string=f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'")


@pytest.mark.stack
@pytest.mark.slow
def test_asha_sweep_logs_a_parent_run_with_four_children_and_the_best_models_version(stack, s3_shards, tmp_path):
    """Run from a shell with Ray token auth on (what any process that started a local ray.init()
    passes to its children): the driver must still join the stack's head, which has auth off."""
    from mlflow import MlflowClient

    name = f"asha-{uuid.uuid4().hex[:6]}"
    summary = _sweep(tmp_path, "loss.weights.l1: loguniform(1, 30)\ntrain.lr_d: loguniform(1e-5, 1e-3)\n"
                     "train.d_steps_per_g: choice([1, 2])\n", s3_shards, name,
                     "--scheduler", "asha", "--max-concurrent", "2", "--grace-period", "2", register=True,
                     driver_env={"RAY_AUTH_MODE": "token"})
    trials = summary["trials"]
    assert len(trials) == 4 and all(t["metric"] is not None for t in trials)
    completed = [t for t in trials if t["status"] == "completed"]
    assert completed and all(t["step"] == 4 and t["model_version"] for t in completed)
    assert all(t["status"] in ("completed", "stopped") and t["step"] in (2, 4) for t in trials)
    best = next(t for t in trials if t["trial_id"] == summary["best_trial"])
    assert best["metric"] == min(t["metric"] for t in completed)
    assert (summary["best_config"], summary["best_value"], summary["best_model_version"]) == (
        best["config"], best["metric"], best["model_version"])  # the winner at the top level

    client = MlflowClient(stack.mlflow_uri)
    parent = client.get_run(summary["parent_run_id"])
    assert parent.info.status == "FINISHED" and parent.info.run_name == name
    assert parent.data.params["scheduler"] == "asha" and parent.data.params["grace_period"] == "2"
    assert parent.data.params["space.train.lr_d"] == "loguniform(1e-05, 0.001)"
    assert parent.data.metrics["best/val/l1"] == pytest.approx(best["metric"])
    assert parent.data.tags[BEST_MODEL_VERSION_TAG] == best["model_version"]
    assert parent.data.tags[BEST_MODEL_NAME_TAG] == f"vton-test-{name}"
    version = client.get_model_version(f"vton-test-{name}", best["model_version"])
    assert version.run_id == best["mlflow_run_id"]
    # Trials run from a copy of the project without .git: the commit comes from where the sweep started.
    from orchestrator.provenance import PROJECT_ROOT

    head = subprocess.run(["git", "-C", str(PROJECT_ROOT), "rev-parse", "HEAD"], capture_output=True, text=True)
    assert version.tags["git_commit"] == head.stdout.strip() and len(head.stdout.strip()) == 40
    # What `vton promote MODEL --from-sweep RUN_ID` takes as its candidate.
    from orchestrator.registry.promotion import candidate_from_sweep
    assert candidate_from_sweep(client, f"vton-test-{name}", parent.info.run_id) == best["model_version"]
    artifacts = {a.path for folder in ("sweep", "best") for a in client.list_artifacts(parent.info.run_id, folder)}
    assert {"sweep/trials.png", "sweep/trials.csv", "sweep/space.yaml", "best/config.yaml"} <= artifacts
    best_config = client.download_artifacts(parent.info.run_id, "best/config.yaml", str(tmp_path))
    assert load_config(best_config).train.lr_d == pytest.approx(best["config"]["train.lr_d"])

    children = _children(client, parent)
    assert len(children) == 4
    assert {c.data.tags["vton.trial_id"] for c in children} == {t["trial_id"] for t in trials}
    # ASHA's early stops are its decision, not crashes: FINISHED, tagged so.
    status = {c.data.tags["vton.trial_id"]: (c.info.status, c.data.tags.get("vton.early_stopped")) for c in children}
    assert all(status[t["trial_id"]] == ("FINISHED", "true" if t["status"] == "stopped" else None) for t in trials), status
    # The Train run's rank-0 tracker logged into the child: the resolved config as params, losses as metrics.
    child = next(c for c in children if c.info.run_id == best["mlflow_run_id"])
    assert float(child.data.params["train.lr_d"]) == pytest.approx(best["config"]["train.lr_d"])
    assert "loss/G_total" in child.data.metrics


@pytest.mark.stack
@pytest.mark.slow
def test_ctrl_c_ends_the_sweep_killed_and_lists_every_trial_with_its_real_state(stack, s3_shards, tmp_path):
    """Ctrl-C once: Tune stops gracefully; the summary lists every trial it had started, cut short,
    as "interrupted" (not ASHA's "stopped"), the parent run and their child runs are KILLED, and
    `vton tune` exits 130."""
    import signal
    import threading

    from mlflow import MlflowClient

    name = f"int-{uuid.uuid4().hex[:6]}"
    space_file = tmp_path / "space.yaml"
    space_file.write_text("train.lr_d: loguniform(1e-5, 1e-3)\n")
    overrides = [*_overrides(s3_shards, name, False), "train.steps=400", "checkpoint.every_n_steps=200",
                 "train.eval_every=200"]
    process = subprocess.Popen([VTON, "tune", str(DEMO), "--space", str(space_file), "--trials", "4", "--trial-cpus",
                                "0.25", "--max-concurrent", "2", "--json", "--name", name, *overrides],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=REPO)
    lines: list[str] = []
    started = threading.Event()

    def read() -> None:
        for line in process.stdout:
            lines.append(line)
            if "[vton] trial" in line and "Train run" in line:
                started.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        assert started.wait(240), "".join(lines[-60:])
        time.sleep(8)  # the trials are training now
        process.send_signal(signal.SIGINT)
        code = process.wait(timeout=240)
    finally:
        if process.poll() is None:
            process.kill()
    reader.join(timeout=10)
    output = "".join(lines)
    assert code == 130, output[-5000:]
    summary = json.loads(next(line for line in reversed(lines) if line.startswith(SWEEP_PREFIX))[len(SWEEP_PREFIX):])
    states = {t["trial_id"]: t["status"] for t in summary["trials"]}
    # Trials Tune had started (it creates them as slots free up); none reached ASHA's first rung.
    assert len(states) >= 2 and set(states.values()) == {"interrupted"}, states
    client = MlflowClient(stack.mlflow_uri)
    assert client.get_run(summary["parent_run_id"]).info.status == "KILLED"
    children = {c.data.tags["vton.trial_id"]: c.info.status for c in _children(client, client.get_run(summary["parent_run_id"]))}
    assert children and set(children) <= set(states), (children, states)  # every trial with a run is listed
    assert set(children.values()) == {"KILLED"}, children
    assert "interrupted" in output and "parent run is KILLED" in output


@pytest.fixture
def another_ray_instance():
    """A second Ray instance on this node, as a user's notebook or `vton eval --workers 2` starts:
    Ray's address auto-detection is ambiguous while it runs, and a sweep must not depend on it."""
    script = "import ray, sys; ray.init(address='local', num_cpus=1, include_dashboard=False); print('up', flush=True); sys.stdin.read()"
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    proc = subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert proc.stdout.readline().strip() == "up"
        yield
    finally:
        proc.stdin.close()  # its ray.shutdown() runs at exit
        proc.wait(timeout=120)


@pytest.mark.stack
@pytest.mark.slow
def test_pbt_sweep_exploits_a_donor_checkpoint_with_the_receivers_own_lr(stack, s3_shards, tmp_path, another_ray_instance):
    """Synchronous PBT: after step 2 both trials pause, the worse copies the better's checkpoint with
    perturbed values, and each trial continues as a new Train run (generation 1) to step 4. (Two
    trials: PBT's bottom quarter of two is one trial; four cost twice the Train runs.)

    With another Ray instance on the node: Ray Train's placement-group cleaners must still find the
    sweep's cluster, or every pause leaks its trial's worker CPUs and the sweep stalls."""
    from mlflow import MlflowClient

    name = f"pbt-{uuid.uuid4().hex[:6]}"
    summary = _sweep(tmp_path, "loss.weights.l1: loguniform(1, 30)\ntrain.lr_d: loguniform(1e-5, 1e-3)\n",
                     s3_shards, name, "--scheduler", "pbt", "--pbt-sync", "--max-concurrent", "2",
                     "--perturbation-interval", "2", register=False, trials=2)
    trials = summary["trials"]
    assert len(trials) == 2 and all(t["status"] == "completed" and t["step"] == 4 for t in trials)
    exploits = [(t, r) for t in trials for r in t["restores"]
                if not r["from"].startswith(f"{name}-{t['trial_id']}-gen")]
    assert exploits, json.dumps(trials, indent=1)
    for trial, restore in exploits:
        donor_trial = restore["from"].removeprefix(f"{name}-").rsplit("-gen", 1)[0]
        assert donor_trial in {t["trial_id"] for t in trials} - {trial["trial_id"]}
        assert restore["step"] == 2  # continued from the donor's checkpoint, not from scratch
        # The optimizer holds the receiver's configured (perturbed) lr, not the donor's.
        assert restore["lr"]["D"] == pytest.approx(restore["config"]["train.lr_d"])
        assert restore["checkpoint_lr"]["D"] != pytest.approx(restore["lr"]["D"])

    client = MlflowClient(stack.mlflow_uri)
    parent = client.get_run(summary["parent_run_id"])
    assert parent.data.params["scheduler"] == "pbt" and parent.data.params["pbt_sync"] == "True"
    children = _children(client, parent)
    assert len(children) == 2 and all(c.info.status == "FINISHED" for c in children)
    # One child per trial across generations; the exploiting generation's values are logged at step 2.
    receiver = next(c for c in children if c.data.tags["vton.trial_id"] == exploits[0][0]["trial_id"])
    assert receiver.data.tags["vton.generation"] == "1"
    history = client.get_metric_history(receiver.info.run_id, "hparam/train.lr_d")
    assert [m.step for m in history] == [0, 2]
    assert history[-1].value == pytest.approx(exploits[0][1]["config"]["train.lr_d"])


def test_a_sweep_gives_its_trials_worker_groups_time_to_start_unless_the_user_said(monkeypatch):
    """Ray Train's 60 s worker-group start timeout, on a node starting several trials at once, restarts
    the groups again and again; the sweep's longer default reaches the trials through the driver's
    runtime_env (FORWARDED_ENV), and a user's own value wins."""
    from orchestrator.jobs.launch import FORWARDED_ENV, WORKER_START_TIMEOUT_ENV
    from tune.sweep import SWEEP_WORKER_START_TIMEOUT_S, set_worker_start_timeout

    assert WORKER_START_TIMEOUT_ENV in FORWARDED_ENV
    monkeypatch.delenv(WORKER_START_TIMEOUT_ENV, raising=False)
    set_worker_start_timeout()
    assert os.environ[WORKER_START_TIMEOUT_ENV] == str(SWEEP_WORKER_START_TIMEOUT_S)
    monkeypatch.setenv(WORKER_START_TIMEOUT_ENV, "45")
    set_worker_start_timeout()
    assert os.environ[WORKER_START_TIMEOUT_ENV] == "45"


def test_optuna_search_samples_the_space_and_holds_the_concurrency_limit():
    """The searcher `vton tune --search optuna` hands Tune: Optuna's sampler over the space's own
    distributions, behind a ConcurrencyLimiter (a full Optuna sweep costs what the ASHA test does)."""
    from tune.schedulers import build_search

    space = SearchSpace.from_mapping({"train.lr_d": "loguniform(1e-5, 1e-3)", "train.d_steps_per_g": "choice([1, 2])"})
    check_search("optuna", "asha", space)
    search = build_search("optuna", max_concurrent=2)
    assert search.set_search_properties("val/l1", "min", space.tune_space())
    first, second = search.suggest("t1"), search.suggest("t2")
    assert search.suggest("t3") is None  # two running: the limiter holds the third back
    for values in (first, second):
        assert 1e-5 <= values["train.lr_d"] <= 1e-3 and values["train.d_steps_per_g"] in (1, 2)
        override_config(demo(), space.overrides(values))  # every suggestion is a valid run config
    search.on_trial_complete("t1", {"val/l1": 0.3, "step": 4})
    assert search.suggest("t3") is not None
