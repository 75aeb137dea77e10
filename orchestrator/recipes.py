"""The recipe a run config names, built with the config's options, loss weights and image size.

Every part of the orchestrator that needs a recipe (the trainer, preflight, evaluation, the registry's
stage loading, sweeps) builds it here, so a config means the same recipe everywhere.
"""

from __future__ import annotations

from orchestrator.config import Config, ConfigError
from vton_models.recipe import Recipe, RecipeContext
from vton_models.registry import build_recipe


def build_recipe_from_config(cfg: Config) -> Recipe:
    from vton_models.registry import RECIPES

    if cfg.model.recipe not in RECIPES:  # the config key at fault, in the words the registry uses
        raise ValueError(f"model.recipe: unknown recipe {cfg.model.recipe!r}; allowed: {sorted(RECIPES)}")
    return build_recipe(cfg.model.recipe, RecipeContext(
        image_size=tuple(cfg.data.image_size), model=dict(cfg.model.options),
        loss_weights=dict(cfg.loss.weights), gan_mode=cfg.loss.gan_mode,
    ))


def refuse_inference_only(recipe: Recipe) -> None:
    """A family's try-on chain runs registered stages; there is nothing in it to train."""
    if recipe.inference_only:
        family = recipe.name.split(".")[0]
        raise ConfigError(f"model.recipe: '{recipe.name}' chains registered stages for try-on and evaluation and "
                          f"trains nothing; train its stages (vton pipeline configs/{family}/), which registers "
                          f"the chain at the end (or: vton models chain {family})")
