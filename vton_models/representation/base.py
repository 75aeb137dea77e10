"""What a family's input builder is: one object a recipe holds, built in the loader or in two halves.

Shards hold raw modalities; each family turns them into its own inputs (``build``, numpy on the
loader's CPU workers, float32 CHW arrays), so the training step only concatenates tensors. Every
builder also returns ``parse``: the (H, W) int64 LIP labels of the person its target shows, which
evaluation's masked metrics read whatever the family. A
representation may also come in two halves: ``compact`` (per sample, in the loader: uint8 images and
small factors) and ``expand`` (per collated batch, torch on any device), with the contract that
``expand(collate(compact(s) for s in batch))`` equals the stacked ``build`` outputs bit for bit.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping, MutableMapping

import numpy as np
from torch import Tensor

from vton_models.representation.sample import DecodedSample


@dataclass(frozen=True)
class Representation:
    """A named input builder. Module-level instances pickle by reference, so a stream's loader
    worker processes receive the same object the recipe holds."""

    name: str
    build: Callable[..., dict[str, np.ndarray]]
    compact: Callable[..., dict[str, np.ndarray]] | None = None
    expand: Callable[..., dict[str, Tensor]] | None = None
    #: Optional members the builder reads ("pose_img.png", "target" for a second person,
    #: "cloth_mask.png"); the stream decodes only these, so a rendered pose or a second person costs
    #: nothing to a builder that ignores it, and `vton tryon` requires a garment mask only from a
    #: model whose builder reads one.
    reads: tuple[str, ...] = ()
    #: ``(member counts of a manifest or None, samples) -> run tags`` saying which optional
    #: members this builder used (e.g. a dataset-rendered pose image vs one it draws itself).
    describe_data: Callable[[Mapping[str, int] | None, int], dict[str, str]] | None = None

    @property
    def has_device_form(self) -> bool:
        return self.compact is not None and self.expand is not None

    def __call__(self, sample: DecodedSample, **options: Any) -> dict[str, np.ndarray]:
        return self.build(sample, **options)

    def require_device_form(self) -> None:
        """``ValueError`` naming this representation when it can only be built in the loader."""
        if not self.has_device_form:
            raise ValueError(f"representation {self.name!r} has no device-side form (representation_on="
                             "'consumer'); use representation_on='loader'")

    def data_tags(self, members: Mapping[str, int] | None, samples: int) -> dict[str, str]:
        return self.describe_data(members, samples) if self.describe_data is not None else {}

    def compact_sample(self, sample: DecodedSample, **options: Any) -> dict[str, np.ndarray]:
        self.require_device_form()
        return self.compact(sample, **options)  # type: ignore[misc]

    def expand_batch(self, batch: Mapping[str, Any], device: Any = "cpu",
                     out: MutableMapping[str, Tensor] | None = None) -> dict[str, Tensor]:
        self.require_device_form()
        return self.expand(batch, device, out)  # type: ignore[misc]
