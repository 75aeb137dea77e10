"""`vton pipeline DIR`: the stages of a multi-stage family, in order, each a Ray Train job.

Why a pipeline is more than a loop over configs: a later stage consumes an earlier one frozen
(``model.gmm`` of ``viton_hd.alias``) or starts its networks from an earlier one's weights
(``Recipe.initializes``: ``model.init.<network>``), and it must use *exactly the version this
pipeline just registered*, not whatever ``@champion`` points at when the job starts. So stages are
ordered by what their recipes consume and initialize from, and each such key the user did not set
is filled with ``models:/NAME/VERSION`` (``#NETWORK`` for a warm start) of the stage run before it. Every config is checked on this machine before
the first job is submitted: a typo in the last stage must not cost the first stage's training.

Overrides apply to every stage (``data.manifest=...``) or to one (``gmm:train.steps=10``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

from orchestrator.config import Config, ConfigError, load_config


@dataclass
class Stage:
    name: str  # the config file's stem: seg, gmm, alias
    path: Path
    cfg: Config
    consumes: dict[str, str] = field(default_factory=dict)  # model.<key> -> recipe it needs
    initializes: dict[str, str] = field(default_factory=dict)  # network -> "recipe[#network]" it starts from

    def needs(self) -> dict[str, str]:
        """Recipes this stage waits for: each consumed key and warm start the config leaves unset."""
        out = {f"model.{k}": r for k, r in self.consumes.items() if not self.cfg.model.options.get(k)}
        out.update({f"model.init.{n}": s.partition("#")[0] for n, s in self.initializes.items()
                    if n not in self.cfg.model.init})
        return out


@dataclass
class StageResult:
    stage: str
    job_id: str
    model_uri: str | None
    mlflow_run_id: str | None
    val_after: dict | None


def _split_overrides(overrides: Sequence[str], stages: set[str]) -> tuple[list[str], dict[str, list[str]]]:
    common: list[str] = []
    per_stage: dict[str, list[str]] = {s: [] for s in stages}
    for item in overrides:
        head, sep, rest = item.partition(":")
        if sep and "=" not in head:
            if head not in stages:
                raise ConfigError(f"override {item!r}: no stage '{head}' in this pipeline (stages: {sorted(stages)})")
            per_stage[head].append(rest)
        else:
            common.append(item)
    return common, per_stage


def load_stages(directory: str | Path, overrides: Sequence[str] = ()) -> list[Stage]:
    """Every ``*.yaml`` stage config of ``directory``, resolved and ordered by what it consumes."""
    from orchestrator.recipes import build_recipe_from_config

    directory = Path(directory)
    paths = sorted(directory.glob("*.yaml"))
    if not paths:
        raise ConfigError(f"pipeline {directory}: no *.yaml stage configs there")
    common, per_stage = _split_overrides(overrides, {p.stem for p in paths})
    stages = []
    for path in paths:
        cfg = load_config(path, [*common, *per_stage[path.stem]])
        try:
            recipe = build_recipe_from_config(cfg)
        except (ValueError, KeyError) as exc:
            raise ConfigError(f"{path}: {str(exc).strip(chr(39))}") from None
        stages.append(Stage(path.stem, path, cfg, dict(recipe.consumes), dict(recipe.initializes)))
    by_recipe = {s.cfg.model.recipe: s for s in stages}
    if len(by_recipe) != len(stages):
        raise ConfigError(f"pipeline {directory}: two stage configs train the same recipe")
    ordered: list[Stage] = []
    while len(ordered) < len(stages):  # consumed stages first; a cycle cannot be ordered
        ready = [s for s in stages if s not in ordered and all(
            by_recipe[r] in ordered for r in s.needs().values() if r in by_recipe)]
        if not ready:
            raise ConfigError(f"pipeline {directory}: stages consume each other in a cycle")
        ordered.extend(ready)
    return ordered


def check_stages(stages: Sequence[Stage], where=None) -> None:
    """Preflight of every stage before any job; a consumed stage produced here is not registered yet,
    so that key is checked when its job starts."""
    from orchestrator.jobs.preflight import preflight

    produced_here = {s.cfg.model.recipe for s in stages}
    for stage in stages:
        pending = {key.removeprefix("model.") for key, recipe in stage.needs().items()
                   if recipe in produced_here and not key.startswith("model.init.")}
        try:
            preflight(stage.cfg, where, pending)
        except ConfigError as exc:
            raise ConfigError(f"stage '{stage.name}' ({stage.path}): {exc}") from None


def wire_stage(stage: Stage, produced: dict[str, str], say: Callable[[str], None] = print) -> None:
    """Fill each consumed key and warm start the config leaves unset with the version ``produced``
    holds for its recipe (``{recipe: models:/NAME/VERSION}``), saying each one."""
    for key, recipe in stage.consumes.items():
        if not stage.cfg.model.options.get(key) and recipe in produced:
            stage.cfg.model.options[key] = produced[recipe]
            say(f"==> {stage.name}: model.{key} = {produced[recipe]}")
    for network, source in stage.initializes.items():
        recipe, _, source_network = source.partition("#")
        if network not in stage.cfg.model.init and recipe in produced:
            stage.cfg.model.init[network] = f"{produced[recipe]}#{source_network or network}"
            say(f"==> {stage.name}: model.init.{network} = {stage.cfg.model.init[network]}")


#: How one stage runs: its (wired) config in, an id to name it by and the trainer's result out
#: (``steps``, ``model_version``, ``mlflow_run_id``, ``val_after``), or an exception.
StageRunner = Callable[[Stage], tuple[str, dict]]


def ray_job_runner(on_line: Callable[[str], None], say: Callable[[str], None] = print,
                   env_file: str | None = None) -> StageRunner:
    """Each stage a Ray job on the cluster, its lines to ``on_line``: what `vton pipeline` runs."""
    from orchestrator.jobs import submit as jobs

    def run(stage: Stage) -> tuple[str, dict]:
        client, job_id = jobs.submit(stage.cfg, env_file=env_file)
        say(f"==> {stage.name}: job {job_id} ({stage.cfg.model.recipe}, {stage.cfg.train.steps} steps)")
        outcome = jobs.wait(client, job_id, on_line)
        if outcome.status != "SUCCEEDED" or outcome.result is None:
            tail = "\n".join(outcome.logs.splitlines()[-30:])
            raise RuntimeError(f"stage '{stage.name}' (job {job_id}) ended {outcome.status}; later stages were not "
                               f"submitted. Last log lines:\n{tail}")
        return job_id, outcome.result

    return run


def run_pipeline(stages: Sequence[Stage], run_stage: StageRunner, say: Callable[[str], None] = print
                 ) -> list[StageResult]:
    """Run the stages one after another (``run_stage``: a Ray job each for `vton pipeline`), wiring
    each consumed key and warm start to the version just registered. The runner is a parameter
    because the wiring, not the way a stage trains, is what makes a pipeline: the tests run most
    stages in this process and one per family as a Ray job."""
    from orchestrator.registry.tracking import registered_model_name

    produced: dict[str, str] = {}  # recipe -> models:/NAME/VERSION registered by this pipeline
    results = []
    for stage in stages:
        wire_stage(stage, produced, say)
        job_id, result = run_stage(stage)
        uri = None
        if result.get("model_version"):
            uri = f"models:/{registered_model_name(stage.cfg)}/{result['model_version']}"
            produced[stage.cfg.model.recipe] = uri
        results.append(StageResult(stage.name, job_id, uri, result.get("mlflow_run_id"), result.get("val_after")))
        say(f"==> {stage.name}: done, registered {uri or '(not registered)'}")
    return results


def register_pipeline_chain(stages: Sequence[Stage], results: Sequence[StageResult], name: str | None = None,
                            say: Callable[[str], None] = print) -> str | None:
    """The family's try-on chain from the stage versions this pipeline just registered, when the
    family has a chain and the pipeline trained every stage of it; None (and a note) otherwise."""
    from orchestrator.registry.chain import register_chain
    from vton_models.registry import family_of

    family = family_of(stages[0].cfg.model.recipe) if stages else None
    if family is None or family.chain is None:
        return None
    produced = {s.cfg.model.recipe: r.model_uri for s, r in zip(stages, results) if r.model_uri}
    uris = {stage: produced.get(recipe) for stage, recipe in family.chain.chains.items()}
    missing = [stage for stage, uri in uris.items() if uri is None]
    if missing:
        say(f"==> no try-on chain: this pipeline registered no {', '.join(missing)} stage "
            f"(chain registered stages with `vton models chain {family.name}`)")
        return None
    uri = register_chain(family.name, uris, name=name)
    say(f"==> try-on chain {uri} ({' -> '.join(uris.values())}) is models:/{uri.split('/')[1]}@champion")
    return uri
