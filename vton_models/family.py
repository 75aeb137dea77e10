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
    ``SOURCE`` (where the weights come from), ``load_official(stage, path, network) -> network``
    (checks every key and shape, then loads) and ``CheckpointMismatch``; optionally
    ``IMPORT_OVERRIDES`` (settings the release needs, e.g. CP-VTON's ``align_corners``) and
    ``RELEASE_NAMES`` (what ``vton import`` also accepts, e.g. ``cp-vton``); None when the paper
    released no weights. An imported stage is registered with ``configs/<family>/<stage>.yaml``,
    the options it was released with (``vton import --set`` for weights trained with others); a
    stage that requires an earlier one (``Recipe.required_stages``) is wired to the version the same
    import registered.

    ``chain``: for a multi-stage family, the inference-only recipe (also in ``recipes``) that runs
    its registered stages one after another on a new garment, as the paper's test code does; it is
    what ``vton tryon`` and ``vton eval`` use, registered as ``vton-<family>`` by ``vton import
    --register``, at the end of ``vton pipeline``, or by ``vton models chain``."""

    name: str
    paper: str
    recipes: tuple[type[Recipe], ...]
    representations: tuple[Representation, ...] = field(default=())
    importer: ModuleType | None = None
    chain: type[Recipe] | None = None

    def __post_init__(self) -> None:
        for recipe in self.recipes:
            if not recipe.name.startswith(self.name):
                raise ValueError(f"family {self.name!r}: recipe {recipe.name!r} must be named "
                                 f"'{self.name}' or '{self.name}.<stage>'")
        if self.chain is not None and (self.chain not in self.recipes or not self.chain.inference_only):
            raise ValueError(f"family {self.name!r}: its chain must be one of its recipes and inference-only")

    @property
    def stages(self) -> tuple[type[Recipe], ...]:
        """The trainable recipes (every recipe but the chain)."""
        return tuple(r for r in self.recipes if not r.inference_only)
