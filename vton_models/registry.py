"""Where the rest of the project finds families, recipes and representations by name.

Config ``model.recipe`` and ``data.representation`` are names; this module maps them to the
objects the families define (``vton_models/families/__init__.py`` lists the families). Tests may
add a recipe of their own with ``register`` (and remove it with ``unregister``).
"""

from __future__ import annotations

from vton_models.families import FAMILIES
from vton_models.family import Family
from vton_models.recipe import Recipe, RecipeContext
from vton_models.representation.base import Representation

RECIPES: dict[str, type[Recipe]] = {}
REPRESENTATIONS: dict[str, Representation] = {}


def register(cls: type[Recipe]) -> type[Recipe]:
    """Add ``cls`` under ``cls.name`` (and its representation); re-registering the same class is a no-op."""
    if not (isinstance(cls, type) and issubclass(cls, Recipe)):
        raise TypeError(f"register: {cls!r} is not a Recipe subclass")
    name = getattr(cls, "name", None)
    if not isinstance(name, str) or not name:
        raise ValueError(f"register: {cls.__name__} has no 'name'")
    existing = RECIPES.get(name)
    if existing is not None and existing is not cls:
        raise ValueError(f"register: recipe name '{name}' is taken by {existing.__module__}.{existing.__name__}")
    cls.check_definition()
    RECIPES[name] = cls
    register_representation(cls.representation)
    return cls


def unregister(name: str) -> None:
    RECIPES.pop(name, None)


def register_representation(representation: Representation) -> None:
    existing = REPRESENTATIONS.get(representation.name)
    if existing is not None and existing is not representation:
        raise ValueError(f"register: representation name {representation.name!r} is taken")
    REPRESENTATIONS[representation.name] = representation


def get_recipe(name: str) -> type[Recipe]:
    """The recipe class registered as ``name``; ``ValueError`` listing the known names otherwise."""
    try:
        return RECIPES[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown recipe {name!r}; allowed: {sorted(RECIPES)}") from None


def build_recipe(name: str, context: RecipeContext) -> Recipe:
    """An instance of recipe ``name`` for ``context`` (options and loss weights validated)."""
    return get_recipe(name)(context)


def get_representation(name: str) -> Representation:
    """The input builder registered as ``name``; ``ValueError`` listing the known names otherwise."""
    try:
        return REPRESENTATIONS[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown representation {name!r}; registered: {sorted(REPRESENTATIONS)}") from None


def family_of(recipe_name: str) -> Family | None:
    return next((f for f in FAMILIES if any(r.name == recipe_name for r in f.recipes)), None)


def importers() -> dict[str, Family]:
    """Families that can import released weights, by family name."""
    return {f.name: f for f in FAMILIES if f.importer is not None}


for _family in FAMILIES:
    for _representation in _family.representations:
        register_representation(_representation)
    for _recipe in _family.recipes:
        register(_recipe)
