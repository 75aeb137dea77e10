"""Every training stage of every family at a small size: the set-up P2 and P3 share for ``--recipe``.

Why this and not the family's tests' settings: the tests shrink widths to 8 channels so that a stage
learns in seconds; at that width a step is a few milliseconds of Python and the ratios would measure
the interpreter. Here widths are 16 (ALIAS's 8, it doubles per level) at 64x64 (unet_sa: its demo's
64x48), batch 4 per worker, every loss term of the shipped config on (the VGG and face-identity terms
load random-valued files from a temporary ``TORCH_HOME``: a step costs the same whatever the weights).

A stage that consumes an earlier one frozen, or starts from its weights (``model.init``), gets it the
way a job does: from the MLflow registry of the local stack, wired by ``orchestrator.jobs.pipeline``
exactly as ``vton pipeline`` wires it. The registered upstream stages are freshly initialised networks,
logged once per family (their values do not change a step's cost), not trained ones.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

BATCH = 4


@dataclass(frozen=True)
class FamilyBench:
    synthetic: str  # shards.synthetic writer
    layout: str  # shard layout read from it
    size: tuple[int, int]
    stages: tuple[str, ...]  # configs/<family>/<stage>.yaml, any order (the pipeline orders them)
    overrides: tuple[str, ...] = field(default=())  # KEY=VALUE or STAGE:KEY=VALUE


def _each(stages: tuple[str, ...], *options: str) -> tuple[str, ...]:
    return tuple(f"{s}:{o}" for s in stages for o in options)


FAMILIES: dict[str, FamilyBench] = {
    "unet_sa": FamilyBench("viton_hd", "viton_hd", (64, 48), ("demo",)),
    "viton_hd": FamilyBench("viton_hd", "viton_hd", (64, 64), ("gmm", "seg", "alias"), (
        "gmm:model.ngf=16", "gmm:model.work_size=null", "seg:model.ngf=16", "seg:model.ndf=16",
        "seg:model.work_size=null", "alias:model.ngf=8", "alias:model.norm_hidden=16",
        "alias:model.num_upsampling_layers=normal", "alias:model.ndf=16")),
    "cpvton_aux": FamilyBench("viton", "viton", (64, 64), ("gmm", "tom"), ("model.ngf=16",)),
    "tree_block": FamilyBench("mpv", "mpv_triplets", (64, 64), ("parse", "gmm", "app", "face", "joint"), (
        *_each(("parse", "app", "face", "joint"), "model.ngf=16", "model.ndf=16"), "gmm:model.ngf=16",
        *_each(("app", "face", "joint"), "model.n_blocks=3"), "face:model.face_size=48")),
    "spg_vton": FamilyBench("mpv", "mpv_triplets", (64, 64), ("sem", "tryon", "joint"), (
        "model.ngf=16", "model.ndf=16", *_each(("tryon", "joint"), "model.gmm_ngf=16"))),
}


def family_of_recipe(name: str) -> tuple[str, str | None]:
    """``--recipe`` -> (family, stage or None for every stage): ``tree_block.app``, ``tree_block``,
    or ``unet_sa`` (whose one stage is its demo config)."""
    family, _, stage = name.partition(".")
    if family not in FAMILIES:
        raise SystemExit(f"--recipe {name}: unknown family {family!r} (families: {', '.join(FAMILIES)}, or all)")
    if stage and family == "unet_sa":
        stage = "demo"
    if stage and stage not in FAMILIES[family].stages:
        raise SystemExit(f"--recipe {name}: {family} has no stage {stage!r} ({', '.join(FAMILIES[family].stages)})")
    return family, stage or None


def recipes_named(arg: str) -> dict[str, list[str] | None]:
    """``all`` or a comma list of families / family.stage names -> {family: stages or None (all)}."""
    names = list(FAMILIES) if arg == "all" else [n for n in arg.split(",") if n]
    chosen: dict[str, list[str] | None] = {}
    for name in names:
        family, stage = family_of_recipe(name)
        if stage is None or chosen.get(family, []) is None:
            chosen[family] = None
        else:
            chosen.setdefault(family, []).append(stage)
    return chosen


def make_family_shards(family: str, root: Path, n: int = 64) -> str:
    from shards.synthetic import synthesize_layout
    from shards.writer import build_shards

    spec = FAMILIES[family]
    synthesize_layout(spec.synthetic, root / "data", n=n, size=spec.size, seed=0)
    build_shards(spec.layout, root / "data", "train", f"file://{root}/shards", shard_size_bytes="1MB", workers=1)
    return f"file://{root}/shards/manifest.json"


def bench_overrides(family: str, manifest: str, steps: int) -> list[str]:
    h, w = FAMILIES[family].size
    return [f"data.manifest={manifest}", "data.val_manifest=", f"data.image_size={h}x{w}", f"data.batch_size={BATCH}",
            "data.loader_workers=1", "ray.use_gpu=false", "tracking.enabled=false", "tracking.system_metrics=false",
            "precision.mode=fp32", f"train.steps={steps}", "train.grad_accum=1", "train.sample_every=0",
            "train.log_every=100000", "train.eval_every=100000", "train.lr_plateau_patience=0",
            "checkpoint.every_n_steps=100000", *FAMILIES[family].overrides]


def family_stages(family: str, overrides: list[str]):
    """The family's stage configs in pipeline order (``orchestrator.jobs.pipeline.load_stages``)."""
    from orchestrator.jobs.pipeline import load_stages

    with tempfile.TemporaryDirectory() as tmp:
        for stage in FAMILIES[family].stages:  # each a stage file based on the shipped one (its own _base_ kept)
            source = REPO / "configs" / family / f"{stage}.yaml"
            Path(tmp, source.name).write_text(f"_base_: {source}\n")
        return load_stages(tmp, overrides)


def register_fresh(stage) -> str:
    """Log the stage's freshly built networks as a registered model, as training would; its URI."""
    import copy

    from orchestrator.recipes import build_recipe_from_config
    from orchestrator.registry.tracking import MlflowTracker

    cfg = copy.deepcopy(stage.cfg)
    cfg.tracking.enabled, cfg.tracking.register_model = True, True
    cfg.tracking.experiment = "vton-bench"
    cfg.tracking.model_name = f"vton-bench-{cfg.model.recipe.replace('.', '-')}"
    recipe = build_recipe_from_config(cfg)
    networks = recipe.build_networks()
    tracker = MlflowTracker(cfg, None)
    try:
        version = tracker.log_stage({g: networks[g] for g in recipe.generator_names()},
                                    {"networks": {n: m.state_dict() for n, m in networks.items()}}, cfg,
                                    {"vton.bench": "fresh weights"})
    finally:
        tracker.close()
    return f"models:/{cfg.tracking.model_name}/{version}"


def wired_stages(family: str, manifest: str, steps: int, wanted: list[str] | None):
    """Stages to measure, each wired to registered upstream stages; yields (stage, Config)."""
    from orchestrator.jobs.pipeline import wire_stage

    produced: dict[str, str] = {}
    stages = family_stages(family, bench_overrides(family, manifest, steps))
    needed = {r for s in stages for r in s.needs().values()}
    for stage in stages:
        wire_stage(stage, produced, say=lambda line: print(line, file=sys.stderr))
        if wanted is None or stage.name in wanted:
            yield stage
        if stage.cfg.model.recipe in needed:
            produced[stage.cfg.model.recipe] = register_fresh(stage)


def bare_in_subprocess(cfg, steps: int | None = None, batch: int | None = None) -> dict:
    """The bare loop in a fresh process (so its peak RSS is its own): steady steps/s and RSS."""
    import copy

    cfg = copy.deepcopy(cfg)
    if steps is not None:
        cfg.train.steps = steps
    if batch is not None:
        cfg.data.batch_size = batch
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(cfg.to_dict(), f)
    try:
        out = subprocess.run([sys.executable, str(Path(__file__).with_name("_bare_run.py")), f.name],
                             capture_output=True, text=True, env=os.environ.copy())
    finally:
        os.unlink(f.name)
    if out.returncode != 0:
        raise RuntimeError(f"bare loop of {cfg.model.recipe} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def calibrated_steps(cfg, window_s: float, lo: int = 30, hi: int = 200) -> tuple[int, dict]:
    """Steps for a steady window of about ``window_s`` seconds at this stage's speed, from a short
    bare run (returned too: its memory figures are the batch's). Why: Ray Train starts its helper
    actors during the first seconds of training, each importing for 2-3 s of CPU; a short window
    on 2 cores measures that one-off cost instead of the per-step overhead (bench/p2_overhead.py)."""
    probe = bare_in_subprocess(cfg, steps=12)
    return max(lo, min(hi, round(probe["steps_per_s"] * window_s))), probe


def stack_and_weights() -> tempfile.TemporaryDirectory:
    """The local stack's MLflow/S3 env (registry of upstream stages) and a TORCH_HOME of random files."""
    from cluster.settings import apply_stack_env
    from vton_models.weights import write_random_weights

    apply_stack_env()
    if not os.environ.get("MLFLOW_TRACKING_URI"):
        raise SystemExit("no local stack env file (.vton/stack/stack.env): run `vton stack up` first")
    home = tempfile.TemporaryDirectory(prefix="vton-bench-torch-home-")
    write_random_weights(Path(home.name))
    os.environ["TORCH_HOME"] = home.name
    return home


def measure_families(arg: str, section: str, measure, settings: dict) -> None:
    """``measure(cfg) -> dict`` for every stage ``--recipe arg`` names, each family's results merged into
    its JSON under ``section`` with ``settings``."""
    chosen = recipes_named(arg)  # a misspelt name fails before the stack is asked and weights written
    home = stack_and_weights()
    try:
        for family, wanted in chosen.items():
            with tempfile.TemporaryDirectory() as tmp:
                manifest = make_family_shards(family, Path(tmp))
                results = {stage.name: measure(stage.cfg) for stage in wired_stages(family, manifest, 12, wanted)}
            merge_family_result(family, section, results, settings)
    finally:
        home.cleanup()


def with_sections(cfg, **sections: dict):
    """A copy of ``cfg`` with ``<section>.<key>`` replaced, e.g. ``ray={"num_workers": 2}``: one stage's
    variants (workers, threads) measured against each other."""
    import copy

    cfg = copy.deepcopy(cfg)
    for section, values in sections.items():
        for key, value in values.items():
            setattr(getattr(cfg, section), key, value)
    return cfg


def family_cli(description: str, default_window_s: float, families, demo) -> None:
    """P2's and P3's command line: ``--recipe`` runs ``families(recipe, window_s, rounds)`` for the named
    stages; without it ``demo()`` measures seed 000's demo model as the benchmark always did."""
    import argparse

    p = argparse.ArgumentParser(description=description)
    p.add_argument("--recipe", default="", help="all, FAMILY or FAMILY.STAGE (comma list): one JSON per family; "
                                                "default: seed 000's demo model only")
    p.add_argument("--window", type=float, default=default_window_s,
                   help="seconds of steady-state steps per run with --recipe")
    p.add_argument("--rounds", type=int, default=1, help="interleaved rounds per stage with --recipe")
    args = p.parse_args()
    if args.rounds < 1 or args.window <= 0:
        p.error("--rounds must be >= 1 and --window > 0")
    if args.recipe:
        families(args.recipe, args.window, args.rounds)
    else:
        demo()


def merge_family_result(family: str, section: str, per_stage: dict[str, dict], extra: dict) -> Path:
    """bench/results/family_<family>.json: {stage: {p2: ..., p3: ...}}, each script its own section."""
    path = REPO / "bench" / "results" / f"family_{family}.json"
    data = json.loads(path.read_text()) if path.is_file() else {"family": family, "stages": {}}
    for stage, result in per_stage.items():
        data["stages"].setdefault(stage, {})[section] = result
    data.setdefault("settings", {})[section] = extra
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2) + "\n")
    print(json.dumps({stage: data["stages"][stage] for stage in per_stage}, indent=2))
    return path
