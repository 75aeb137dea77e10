"""A family's try-on model: its registered stages chained, registered as one model (``vton-<family>``).

Why one registered model and not three URIs on every command line: ``vton tryon`` and ``vton eval``
take one ``--model``, a promotion gate moves one ``@champion``, and the stages must be the ones that
were meant to run together. The chain model holds copies of the three stage generators (it loads
without the stage entries, which may be archived later) and names the exact versions it copied in
its config (``model.seg`` / ``gmm`` / ``alias``) and in version tags (``vton.chain.<stage>``), with
each stage's options (``model.stage_options``) so it rebuilds exactly those networks.
"""

from __future__ import annotations

import time
from typing import Mapping

from orchestrator.registry.models import ModelError, load_registered, resolve_version


class ChainError(ValueError):
    """The stages cannot be chained; the message names the stage and the URI at fault."""


def chain_recipe(family: str):
    from vton_models.registry import FAMILIES

    for fam in FAMILIES:
        if fam.name == family:
            if fam.chain is None:
                raise ChainError(f"family {family!r} has no try-on chain (it is one stage: its model tries on)")
            return fam.chain
    raise ChainError(f"unknown family {family!r}; families: {', '.join(f.name for f in FAMILIES)}")


def default_stage_uri(family: str, stage: str) -> str:
    return f"models:/vton-{family}-{stage}@champion"


def register_chain(family: str, stages: Mapping[str, str] | None = None, name: str | None = None,
                   champion: bool = True) -> str:
    """Register ``family``'s chain from registered stages (``{stage: models:/...}``; a stage not given
    is ``models:/vton-<family>-<stage>@champion``) as ``name`` (default ``vton-<family>``); with
    ``champion`` point its ``@champion`` at it. Returns ``models:/NAME/VERSION``."""
    from mlflow import MlflowClient

    from orchestrator.config import load_config
    from orchestrator.recipes import build_recipe_from_config
    from orchestrator.registry.tracking import MlflowTracker

    chain = chain_recipe(family)
    stages = dict(stages or {})
    unknown = sorted(set(stages) - set(chain.chains))
    if unknown:
        raise ChainError(f"{chain.name}: no stage {unknown[0]!r}; it chains {', '.join(chain.chains)}")
    loaded, pinned = {}, {}
    for stage, recipe in chain.chains.items():
        uri = stages.get(stage) or default_stage_uri(family, stage)
        try:
            model_name, version = resolve_version(uri)
        except ModelError as exc:
            raise ChainError(f"stage {stage}: {str(exc).split(': ', 1)[-1]}") from None
        pinned[stage] = f"models:/{model_name}/{version}"
        loaded[stage] = load_registered(pinned[stage])
        kind = loaded[stage].config.model.recipe
        if kind != recipe:
            raise ChainError(f"stage {stage}: {uri} is a '{kind}' model; {chain.name} needs a '{recipe}' model there")
    sizes = {stage: tuple(m.config.data.image_size) for stage, m in loaded.items()}
    if len(set(sizes.values())) > 1:
        listed = ", ".join(f"{s} {h}x{w} ({pinned[s]})" for s, (h, w) in sizes.items())
        raise ChainError(f"{chain.name}: the stages were trained at different image sizes ({listed}); a chain "
                         "reads one batch at one size")
    h, w = next(iter(sizes.values()))
    name = name or f"vton-{family}"
    cfg = load_config(None, [f"model.recipe={chain.name}", f"data.image_size={h}x{w}",
                             f"name=chain-{name}-{time.strftime('%Y%m%d-%H%M%S')}",
                             f"tracking.experiment=vton-{family}-chain", f"tracking.model_name={name}",
                             "tracking.system_metrics=false", "data.manifest=", "data.val_manifest="])
    cfg.model.options.update(pinned)
    cfg.model.options["stage_options"] = {s: dict(m.config.model.options) for s, m in loaded.items()}
    networks = build_recipe_from_config(cfg).build_networks()
    for stage, net in networks.items():
        net.load_state_dict(loaded[stage].generator.state_dict(), strict=True)
    tags = {f"vton.chain.{stage}": uri for stage, uri in pinned.items()}
    tracker = MlflowTracker(cfg, None)
    try:
        version = tracker.log_stage(networks, {"networks": {s: n.state_dict() for s, n in networks.items()}},
                                    cfg, {**tags, "vton.chain": family})
    finally:
        tracker.close()
    assert version is not None, "tracking.register_model is off in the chain config"
    if champion:
        MlflowClient().set_registered_model_alias(name, "champion", version)
    return f"models:/{name}/{version}"
