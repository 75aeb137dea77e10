"""`vton promote`: the MLflow registry promotion gate (``@champion`` / ``@previous``).

What a promotion does
    The candidate version and the version ``@champion`` points at are both evaluated by
    ``orchestrator.evaluate.run_eval`` on the same held-out manifest, with the same pairing and
    FID feature size (the champion first, so a champion that cannot be evaluated fails fast). The
    manifest's sha256 is read before and after; a changed manifest or differing protocol cards
    (e.g. the two models were trained at different resolutions) stop the promotion, because the two
    numbers would not be comparable. ``@champion`` moves to the candidate only if it wins by the
    margin: ``improvement > 0 and improvement >= min_delta``, where improvement is
    ``champion - candidate`` for ``--mode min`` and ``candidate - champion`` for ``--mode max``,
    so an equal score never wins. ``--threshold`` is an absolute bar every promoted candidate must
    pass (``<=`` for min, ``>=`` for max); with no champion yet it is the only bar, and with no
    champion and no threshold the candidate is promoted (there is nothing to compare against).

Alias semantics
    ``@previous`` always names the version that was ``@champion`` immediately before the current
    one (removed when there was none). A promotion sets ``@previous`` to the old champion, then
    ``@champion`` to the candidate. ``--rollback`` swaps them: ``@champion`` returns to
    ``@previous`` and ``@previous`` becomes the version just demoted, so a second rollback undoes
    the first, and the invariant above still holds. Rollback without ``@previous`` is an error.

What is recorded
    Every decision (promoted or rejected) is written as tags ``vton.promotion.*`` on the
    candidate version: both values of the gated metric, both versions, metric/mode/min-delta/
    threshold, manifest URL and sha256, pairing, FID feature size, the protocol card, both
    evaluation runs (experiment ``vton-eval``), decision and reason, who (``$VTON_USER`` or the
    login name) and when (UTC ISO 8601). A rollback tags the demoted version
    (``vton.promotion.rolled_back_*``). A later decision on the same version overwrites its tags;
    the evaluation runs keep the history.

Sweeps (the contract ``tune/`` writes)
    ``--from-sweep RUN_ID`` reads the sweep's parent MLflow run: tag (or param)
    ``SWEEP_BEST_VERSION_TAG`` = the registered version of the best trial's generator, and
    optionally ``SWEEP_BEST_MODEL_TAG`` = its registered model name, which must then equal MODEL.

Concurrent promotions
    Evaluation (minutes) runs without any lock against a snapshot of (``@champion``,
    ``@previous``, epoch). The commit runs inside a claim (``orchestrator.registry.claim``): an
    atomic ``create_registered_model`` of a name derived from the snapshot's epoch, followed by a
    re-read that must still show the snapshot, then the alias writes and an epoch bump. Two
    promotions evaluated against the same champion therefore cannot both win: the second either
    fails to create the claim (the first holds it) or creates a retired name and sees the bumped
    epoch; it writes nothing and reports a conflict (exit 1; re-run to compare against the new
    champion). Every alias write targets a version re-read inside the claim, so ``@champion`` and
    ``@previous`` always point at existing versions. A rejection moves nothing and needs no claim.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Any

from orchestrator.registry.claim import CLAIM_TTL_S, ClaimConflict, acquire, read_epoch, retire_claims, who

CHAMPION, PREVIOUS = "champion", "previous"
SWEEP_BEST_VERSION_TAG = "vton.best_model_version"
SWEEP_BEST_MODEL_TAG = "vton.best_model_name"
TAG_PREFIX = "vton.promotion."
PROMOTED, REJECTED = "promoted", "rejected"

#: The model-quality numbers ``run_eval`` reports, with the direction that is better. Paired ones
#: need ground truth (``--pairs paired``); bookkeeping entries (images, fid_dims, is_real, ...)
#: describe the data or the run, not the model, and cannot be gated on.
DISTRIBUTION_MODES = {"fid": "min", "kid": "min", "is": "max", "mask_is": "max"}
PAIRED_MODES = {"ssim": "max", "mask_ssim": "max", "ms_ssim": "max", "psnr": "max", "l1": "min", "lpips": "min"}
METRIC_MODES = {**PAIRED_MODES, **DISTRIBUTION_MODES}


class PromotionError(ValueError):
    """Something the user can fix: a bad option, model, version, run or manifest."""


class PromotionConflict(RuntimeError):
    """Another writer changed the aliases since this promotion's snapshot; nothing was written."""


# -------------------------------------------------------------------------------------- the gate


@dataclass(frozen=True)
class Gate:
    metric: str
    mode: str
    min_delta: float = 0.0
    threshold: float | None = None
    #: The most bad samples (tag ``bad_sample_fraction`` the trainer writes on the version) a
    #: candidate may have been trained on; a version without the tag (imported) is not judged on it.
    max_bad_fraction: float = 0.05

    def improvement(self, candidate: float, champion: float) -> float:
        return champion - candidate if self.mode == "min" else candidate - champion

    def passes_threshold(self, value: float) -> bool:
        assert self.threshold is not None
        return value <= self.threshold if self.mode == "min" else value >= self.threshold

    def decide(self, candidate: float, champion: float | None) -> tuple[str, str]:
        m = self.metric
        if not math.isfinite(candidate):
            return REJECTED, f"candidate {m} is {candidate}"
        if self.threshold is not None and not self.passes_threshold(candidate):
            op = "<=" if self.mode == "min" else ">="
            return REJECTED, f"candidate {m} {candidate:.6g} fails --threshold (needs {op} {self.threshold:g})"
        if champion is None:
            bar = "passes --threshold" if self.threshold is not None else "no --threshold set"
            return PROMOTED, f"no @champion yet and {bar}"
        if not math.isfinite(champion):
            return REJECTED, f"@champion {m} is {champion}: not comparable"
        gain = self.improvement(candidate, champion)
        if gain > 0 and gain >= self.min_delta:
            return PROMOTED, f"{m} improves by {gain:.6g} (>= min-delta {self.min_delta:g})"
        if gain > 0:
            return REJECTED, f"{m} improves by {gain:.6g} < min-delta {self.min_delta:g}"
        return REJECTED, f"{m} does not improve ({'equal' if gain == 0 else f'worse by {-gain:.6g}'})"


def make_gate(metric: str, mode: str | None, min_delta: float, threshold: float | None, pairs: str,
              max_bad_fraction: float = 0.05) -> Gate:
    """Validate the gate options before anything is evaluated."""
    if metric not in METRIC_MODES:
        raise PromotionError(f"--metric {metric!r}: unknown; valid: {', '.join(METRIC_MODES)}")
    if pairs not in ("paired", "unpaired"):
        raise PromotionError(f"--pairs {pairs!r}: allowed paired, unpaired")
    if pairs == "unpaired" and metric in PAIRED_MODES:
        raise PromotionError(f"--metric {metric} needs ground truth (--pairs paired); unpaired evaluation "
                             f"reports {', '.join(DISTRIBUTION_MODES)}")
    natural = METRIC_MODES[metric]
    if mode is not None and mode != natural:
        better = "lower" if natural == "min" else "higher"
        raise PromotionError(f"--mode {mode} for {metric}: {better} {metric} is better, so its mode is {natural}")
    if not math.isfinite(min_delta) or min_delta < 0:
        raise PromotionError(f"--min-delta {min_delta}: must be a finite number >= 0")
    if threshold is not None and not math.isfinite(threshold):
        raise PromotionError(f"--threshold {threshold}: must be finite")
    if not 0.0 <= max_bad_fraction <= 1.0:
        raise PromotionError(f"--max-bad-fraction {max_bad_fraction}: must be in [0, 1]")
    return Gate(metric, natural, float(min_delta), threshold, float(max_bad_fraction))


def trained_bad_fraction(client: Any, model: str, version: str) -> float | None:
    """The fraction of bad samples ``version`` was trained on, from its tag (None when untagged)."""
    from orchestrator.train.bad_samples import BAD_FRACTION_TAG

    value = (client.get_model_version(model, version).tags or {}).get(BAD_FRACTION_TAG)
    try:
        return None if value is None else float(value)
    except ValueError:
        raise PromotionError(f"version {version} of {model!r}: tag {BAD_FRACTION_TAG}={value!r} is not a number")


# -------------------------------------------------------------------------------- the registry


@dataclass(frozen=True)
class Snapshot:
    """The aliases and the commit counter, from one ``get_registered_model`` read."""

    champion: str | None
    previous: str | None
    epoch: int


def _client(client: Any = None) -> Any:
    if client is not None:
        return client
    from mlflow import MlflowClient

    return MlflowClient()


def _first_line(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:200] if text else ''}"


def read_snapshot(client: Any, model: str) -> Snapshot:
    from mlflow.exceptions import MlflowException

    try:
        rm = client.get_registered_model(model)
    except MlflowException as exc:
        if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
            raise PromotionError(f"model {model!r}: not found in the MLflow registry") from None
        raise
    aliases = {k: str(v) for k, v in (rm.aliases or {}).items()}
    return Snapshot(aliases.get(CHAMPION), aliases.get(PREVIOUS), read_epoch(rm))


def require_version(client: Any, model: str, version: str, what: str = "version") -> None:
    from mlflow.exceptions import MlflowException

    try:
        client.get_model_version(model, str(version))
    except MlflowException:
        raise PromotionError(f"{what} {version!r} of model {model!r}: not found in the MLflow registry") from None


def candidate_from_sweep(client: Any, model: str, run_id: str) -> str:
    """The best trial's version, as the sweep's parent run names it (see the module docstring)."""
    from mlflow.exceptions import MlflowException

    try:
        run = client.get_run(run_id)
    except MlflowException:
        raise PromotionError(f"--from-sweep {run_id}: no such MLflow run") from None
    tags, params = run.data.tags, run.data.params
    version = tags.get(SWEEP_BEST_VERSION_TAG) or params.get(SWEEP_BEST_VERSION_TAG)
    if not version:
        raise PromotionError(f"--from-sweep {run_id}: the run has no tag or param {SWEEP_BEST_VERSION_TAG!r} "
                             "naming the best trial's registered model version (is it a sweep's parent run?)")
    named = tags.get(SWEEP_BEST_MODEL_TAG) or params.get(SWEEP_BEST_MODEL_TAG)
    if named and named != model:
        raise PromotionError(f"--from-sweep {run_id}: the sweep's best version belongs to model {named!r}, "
                             f"not {model!r}")
    return str(version)


# ------------------------------------------------------------------------------ the evaluation


@dataclass
class Side:
    """One evaluated version."""

    version: str
    value: float
    metrics: dict[str, float]
    eval_run_id: str | None


@dataclass
class PromotionPlan:
    """Both evaluations and the gate's decision, against one registry snapshot; nothing written yet."""

    model: str
    gate: Gate
    candidate: Side
    champion: Side | None
    snapshot: Snapshot
    data: str
    manifest_sha256: str
    pairs: str
    fid_dims: int
    protocol: dict[str, Any]
    decision: str
    reason: str


def _sha(data: str) -> str:
    from orchestrator.train.data import manifest_sha256

    try:
        return manifest_sha256(data)
    except Exception as exc:  # noqa: BLE001 - bad URL, missing object, no credentials: all unreadable
        raise PromotionError(f"--data {data}: cannot read the manifest ({_first_line(exc)})") from None


def _evaluate(model: str, version: str, label: str, data: str, pairs: str, workers: int, fid_dims: int,
              networks: tuple[str, ...]):
    from mlflow.exceptions import MlflowException

    from orchestrator.evaluation.evaluate import run_eval
    from orchestrator.registry.models import ModelError

    try:
        # A stage competes with the stage it would replace, both evaluated as trained (teacher-forced
        # stages included: the result cards say so); a try-on chain is judged as a try-on.
        return run_eval(f"models:/{model}/{version}", data, pairs=pairs, workers=workers, fid_dims=fid_dims,
                        teacher_forced=True, networks=networks)
    except (ModelError, MlflowException, OSError) as exc:
        raise PromotionError(f"{label} (version {version}) of model {model!r} cannot be evaluated: "
                             f"{_first_line(exc)}") from None


def evaluate(model: str, candidate: str, data: str, gate: Gate, pairs: str = "paired", workers: int = 1,
             fid_dims: int = 2048, client: Any = None) -> PromotionPlan:
    """Evaluate the candidate and the current champion on ``data``; decide, write nothing."""
    client = _client(client)
    snap = read_snapshot(client, model)
    require_version(client, model, candidate, "candidate version")
    if snap.champion == str(candidate):
        raise PromotionError(f"candidate version {candidate} of model {model!r} is already @{CHAMPION}")
    sha = _sha(data)
    from vton_models.metrics.suite import networks_for

    networks = networks_for([gate.metric])  # only what the gated metric needs (l1 needs no weights file)
    champion, champion_protocol = None, None
    if snap.champion is not None:
        # Pinned to the snapshot's version, not @champion: the alias may move during evaluation.
        result = _evaluate(model, snap.champion, f"@{CHAMPION}", data, pairs, workers, fid_dims, networks)
        champion = Side(snap.champion, float(result.metrics[gate.metric]), result.metrics, result.mlflow_run_id)
        champion_protocol = result.protocol
    result = _evaluate(model, str(candidate), "candidate", data, pairs, workers, fid_dims, networks)
    cand = Side(str(candidate), float(result.metrics[gate.metric]), result.metrics, result.mlflow_run_id)
    if champion is not None and champion_protocol != result.protocol:
        raise PromotionError(f"candidate {candidate} and @{CHAMPION} {snap.champion} of {model!r} are not "
                             f"evaluated under the same protocol: {champion_protocol} vs {result.protocol}")
    if _sha(data) != sha:
        raise PromotionError(f"--data {data}: the manifest changed during evaluation; re-run")
    decision, reason = gate.decide(cand.value, champion.value if champion else None)
    bad = trained_bad_fraction(client, model, str(candidate))
    if bad is not None and bad > gate.max_bad_fraction:
        decision, reason = REJECTED, (f"trained on {bad:.2%} bad samples (tag bad_sample_fraction), more than "
                                      f"--max-bad-fraction {gate.max_bad_fraction:.2%}")
    return PromotionPlan(model, gate, cand, champion, snap, data, sha, pairs, fid_dims, result.protocol,
                         decision, reason)


# ---------------------------------------------------------------------------------- the outcome


@dataclass
class PromotionResult:
    action: str  # promote | rollback
    model: str
    decision: str  # promoted | rejected | rolled_back
    reason: str
    before: dict[str, str | None]
    after: dict[str, str | None]
    by: str
    at: str
    plan: dict[str, Any] | None = field(default=None)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, default=float)

    def table(self) -> str:
        def v(version: str | None) -> str:
            return f"v{version}" if version else "none"

        if self.plan is None:
            return (f"{self.model}: {self.decision} ({self.reason})\n"
                    f"  @champion {v(self.before[CHAMPION])} -> {v(self.after[CHAMPION])}, "
                    f"@previous {v(self.before[PREVIOUS])} -> {v(self.after[PREVIOUS])}")
        p, gate = self.plan, self.plan["gate"]
        cand, champ = p["candidate"], p["champion"]
        head = (f"{self.model}: candidate v{cand['version']} vs "
                f"{'@champion v' + champ['version'] if champ else 'no @champion'} on {p['data']} "
                f"({p['pairs']}, manifest sha256 {p['manifest_sha256'][:12]})")
        rows = [f"  {'metric':12s} {'candidate':>12s} {'champion':>12s}"]
        for name in METRIC_MODES:
            if name in cand["metrics"]:
                other = f"{champ['metrics'][name]:12.6g}" if champ else f"{'-':>12s}"
                mark = f"  <- gate ({gate['mode']}, min-delta {gate['min_delta']:g})" if name == gate["metric"] else ""
                rows.append(f"  {name:12s} {cand['metrics'][name]:12.6g} {other}{mark}")
        moved = (f"@champion {v(self.before[CHAMPION])} -> {v(self.after[CHAMPION])}, "
                 f"@previous -> {v(self.after[PREVIOUS])}"
                 if self.decision == PROMOTED else f"@champion stays {v(self.after[CHAMPION])}")
        return "\n".join([head, *rows, f"decision: {self.decision.upper()} ({self.reason}); {moved}"])


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _decision_tags(plan: PromotionPlan, by: str, at: str) -> dict[str, str]:
    champ = plan.champion
    tags = {
        "decision": plan.decision, "reason": plan.reason, "metric": plan.gate.metric, "mode": plan.gate.mode,
        "min_delta": f"{plan.gate.min_delta:g}",
        "threshold": "none" if plan.gate.threshold is None else f"{plan.gate.threshold:g}",
        "max_bad_fraction": f"{plan.gate.max_bad_fraction:g}",
        "candidate_value": f"{plan.candidate.value:.6g}", "candidate_eval_run": plan.candidate.eval_run_id or "",
        "champion_version": champ.version if champ else "none",
        "champion_value": f"{champ.value:.6g}" if champ else "none",
        "champion_eval_run": (champ.eval_run_id or "") if champ else "",
        "manifest": plan.data, "manifest_sha256": plan.manifest_sha256, "pairs": plan.pairs,
        "fid_dims": str(plan.fid_dims), "protocol": json.dumps(plan.protocol, sort_keys=True), "by": by, "at": at,
    }
    return {TAG_PREFIX + k: v for k, v in tags.items()}


def _write_tags(client: Any, model: str, version: str, tags: dict[str, str]) -> None:
    for key, value in tags.items():
        client.set_model_version_tag(model, version, key, value)


def _aliases(snap: Snapshot) -> dict[str, str | None]:
    return {CHAMPION: snap.champion, PREVIOUS: snap.previous}


def _move(client: Any, model: str, claim: Any, champion: str, previous: str | None) -> None:
    """@previous first, then @champion: a crash in between leaves @previous == @champion, never a
    dangling alias and never a champion that skipped the gate."""
    claim.assert_live()
    if previous is None:
        try:
            client.delete_registered_model_alias(model, PREVIOUS)
        except Exception as exc:  # noqa: BLE001 - no alias to delete is fine
            if getattr(exc, "error_code", "") not in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
                raise
    else:
        client.set_registered_model_alias(model, PREVIOUS, previous)
    claim.assert_live()
    client.set_registered_model_alias(model, CHAMPION, champion)


def _commit_aliases(client: Any, model: str, snap: Snapshot, champion: str, previous: str | None,
                    after_move: Any, ttl_s: float) -> None:
    """Claim epoch ``snap.epoch``, re-check the snapshot, move the aliases, bump the epoch."""
    try:
        claim = acquire(client, model, snap.epoch, ttl_s)
    except ClaimConflict as exc:
        raise PromotionConflict(str(exc)) from None
    try:
        now = read_snapshot(client, model)
        if now == snap:
            for version in {champion, previous} - {None}:
                require_version(client, model, version)
            _move(client, model, claim, champion, previous)
            after_move()
            claim.bump_epoch()
    except BaseException:
        claim.release()
        raise
    if now != snap:
        claim.release()
        retire_claims(client, model, now.epoch)  # a late claim of a committed epoch (ours, maybe) is litter
        raise PromotionConflict(
            f"the aliases of {model} changed since this promotion read them (@champion "
            f"{snap.champion} -> {now.champion}, @previous {snap.previous} -> {now.previous}, epoch "
            f"{snap.epoch} -> {now.epoch}); nothing was written, re-run to compare against the new champion")
    retire_claims(client, model, snap.epoch + 1)


def commit(plan: PromotionPlan, client: Any = None, ttl_s: float = CLAIM_TTL_S) -> PromotionResult:
    """Act on a plan: tag a rejection, or move the aliases under a claim and tag the promotion."""
    client = _client(client)
    by, at = who(), _now()
    snap = plan.snapshot
    tags = _decision_tags(plan, by, at)
    after = _aliases(snap)
    if plan.decision == PROMOTED:
        previous = snap.champion  # None for a first model: @previous is removed (nothing came before)
        _commit_aliases(client, plan.model, snap, plan.candidate.version, previous,
                        lambda: _write_tags(client, plan.model, plan.candidate.version, tags), ttl_s)
        after = {CHAMPION: plan.candidate.version, PREVIOUS: previous}
    else:
        _write_tags(client, plan.model, plan.candidate.version, tags)
    return PromotionResult("promote", plan.model, plan.decision, plan.reason, _aliases(snap), after, by, at,
                           asdict(plan))


def promote(model: str, data: str, candidate: str | None = None, from_sweep: str | None = None,
            metric: str = "fid", mode: str | None = None, min_delta: float = 0.0, threshold: float | None = None,
            pairs: str = "paired", workers: int = 1, fid_dims: int = 2048, client: Any = None,
            max_bad_fraction: float = 0.05) -> PromotionResult:
    """Resolve the candidate, evaluate both sides, decide and commit."""
    if (candidate is None) == (from_sweep is None):
        raise PromotionError("give exactly one of --candidate VERSION or --from-sweep RUN_ID")
    if workers < 1:
        raise PromotionError(f"--workers {workers}: must be >= 1")
    gate = make_gate(metric, mode, min_delta, threshold, pairs, max_bad_fraction)
    client = _client(client)
    read_snapshot(client, model)  # model not found: say so before reading any run
    if from_sweep is not None:
        candidate = candidate_from_sweep(client, model, from_sweep)
    plan = evaluate(model, str(candidate), data, gate, pairs, workers, fid_dims, client)
    return commit(plan, client)


def rollback(model: str, client: Any = None, ttl_s: float = CLAIM_TTL_S) -> PromotionResult:
    """``@champion`` back to ``@previous``; ``@previous`` becomes the demoted version (a swap)."""
    client = _client(client)
    snap = read_snapshot(client, model)
    if snap.previous is None:
        raise PromotionError(f"model {model!r} has no @{PREVIOUS} alias: nothing to roll back to")
    by, at = who(), _now()
    demoted = snap.champion

    def tag_demoted() -> None:
        if demoted is not None:
            _write_tags(client, model, demoted, {TAG_PREFIX + "rolled_back_at": at, TAG_PREFIX + "rolled_back_by": by,
                                                 TAG_PREFIX + "rolled_back_to": snap.previous})

    _commit_aliases(client, model, snap, snap.previous, demoted, tag_demoted, ttl_s)
    after = {CHAMPION: snap.previous, PREVIOUS: demoted}
    reason = f"@champion back to version {snap.previous}"
    return PromotionResult("rollback", model, "rolled_back", reason, _aliases(snap), after, by, at)
