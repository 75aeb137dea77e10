"""Recipe registry: config ``model.recipe`` names map to ``Recipe`` classes.

Families register here explicitly (rather than on import of their module) so that importing
``vton_models.recipes`` is the single place that decides which recipes exist.
"""

from __future__ import annotations

from vton_models.recipes.base import NetworkSpec, Recipe, RecipeContext

RECIPES: dict[str, type[Recipe]] = {}


def register(cls: type[Recipe]) -> type[Recipe]:
    """Add ``cls`` under ``cls.name``; usable as a decorator. Re-registering the same class is a no-op."""
    if not (isinstance(cls, type) and issubclass(cls, Recipe)):
        raise TypeError(f"register: {cls!r} is not a Recipe subclass")
    name = getattr(cls, "name", None)
    if not isinstance(name, str) or not name:
        raise ValueError(f"register: {cls.__name__} has no 'name'")
    existing = RECIPES.get(name)
    if existing is not None and existing is not cls:
        raise ValueError(f"register: recipe name '{name}' is taken by {existing.__module__}.{existing.__name__}")
    RECIPES[name] = cls
    return cls


def get_recipe(name: str) -> type[Recipe]:
    """The recipe class registered as ``name``; ``ValueError`` listing the known names otherwise."""
    try:
        return RECIPES[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown recipe {name!r}; allowed: {sorted(RECIPES)}") from None


def build_recipe(name: str, context: RecipeContext) -> Recipe:
    """An instance of recipe ``name`` for ``context`` (options and loss weights validated)."""
    return get_recipe(name)(context)


from vton_models.recipes.unet_sa import UnetSARecipe  # noqa: E402  (needs base imported first)

register(UnetSARecipe)

__all__ = ["RECIPES", "NetworkSpec", "Recipe", "RecipeContext", "build_recipe", "get_recipe", "register"]

from vton_models.recipes.viton_hd import VitonHDAliasRecipe, VitonHDGMMRecipe, VitonHDSegRecipe  # noqa: E402

for _cls in (VitonHDSegRecipe, VitonHDGMMRecipe, VitonHDAliasRecipe):
    register(_cls)
