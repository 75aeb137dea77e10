"""What a model family contributes: its stages (recipes), its input builders, its weight importer.

A family is one folder (``vton_models/families/<family>/``) whose ``__init__`` defines ``FAMILY``;
``vton_models/families/__init__.py`` lists the folders, one line each. Nothing else in the project
names a family: the trainer, the CLI (``vton models list``, ``vton import``) and the data plane find
everything through ``vton_models.registry``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import ModuleType

from vton_models.recipe import Recipe
from vton_models.representation.base import Representation


@dataclass(frozen=True)
class Family:
    """``importer``: a module with ``STAGE_FILES`` (stage -> what its released checkpoint is),
    ``SOURCE`` (where the weights come from), ``load_all({stage: path}) -> {stage: network}`` and
    ``CheckpointMismatch``; None when the paper released no weights. An imported stage is
    registered with ``configs/<family>/<stage>.yaml``, the options it was released with."""

    name: str
    paper: str
    recipes: tuple[type[Recipe], ...]
    representations: tuple[Representation, ...] = field(default=())
    importer: ModuleType | None = None

    def __post_init__(self) -> None:
        for recipe in self.recipes:
            if not recipe.name.startswith(self.name):
                raise ValueError(f"family {self.name!r}: recipe {recipe.name!r} must be named "
                                 f"'{self.name}' or '{self.name}.<stage>'")
