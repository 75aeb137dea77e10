"""Held-out evaluation inside the training loop, computed across ranks.

Every rank generates for its own share of the held-out shards and sums per-image metric values;
one all-reduce of the sums gives the global means, so the number does not depend on how many
workers ran (StyleGAN3 computes its metrics the same way). Besides L1/SSIM/PSNR of the generated
image, each recipe adds what its stage is judged by (the seg stage: pixel accuracy and mIoU).
"""

from __future__ import annotations

from typing import Mapping

import torch
import torch.distributed as dist
from torch import nn

from orchestrator.config import Config
from orchestrator.train.data import make_val_stream
from vton_models.metrics import l1_per_image, psnr_per_image, ssim_per_image, to_unit_range
from vton_models.recipe import Recipe


#: People in the held-out sample grid: the same ones at every step of a run, and in every run on
#: the same held-out manifest (they are its first samples in tar order, the validation stream's order).
HELDOUT_GRID_PEOPLE = 4


class Validator:
    def __init__(self, cfg: Config, recipe: Recipe, ctx) -> None:
        self.cfg, self.recipe, self.ctx = cfg, recipe, ctx
        self.stream = make_val_stream(cfg, recipe, ctx.rank, ctx.world_size, str(ctx.device))
        self._grid_inputs: Mapping[str, torch.Tensor] | None = None

    @torch.no_grad()
    def sample_columns(self, generators: Mapping[str, nn.Module]) -> dict[str, torch.Tensor]:
        """The recipe's labelled sample-grid columns for the fixed held-out people (the first
        ``HELDOUT_GRID_PEOPLE`` of rank 0's held-out stream, so every log shows the same faces and garments)."""
        if self._grid_inputs is None:
            self._grid_inputs = self.recipe.inputs(self._first_people(HELDOUT_GRID_PEOPLE))
        was_training = {name: g.training for name, g in generators.items()}
        for g in generators.values():
            g.eval()
        try:
            generated = self.recipe.generate(dict(generators), self._grid_inputs)
        finally:
            for name, g in generators.items():
                g.train(was_training[name])
        return self.recipe.sample_panels(self._grid_inputs, generated)

    def _first_people(self, count: int) -> dict[str, torch.Tensor]:
        from shards.stream import StreamPosition

        parts: list[dict[str, torch.Tensor]] = []
        batches = self.stream.iter_from(StreamPosition(epoch=0, step=0))
        for _ in range(self.stream.batches_per_epoch):
            batch = next(batches)  # copies: the stream may reuse its buffers for the next batch
            parts.append({k: v.to(self.ctx.device).clone() for k, v in batch.items() if torch.is_tensor(v) and v.dim()})
            if sum(len(p[next(iter(p))]) for p in parts) >= count:
                break
        batches.close()
        return {k: torch.cat([p[k] for p in parts])[:count] for k in parts[0]}

    @torch.no_grad()
    def run(self, generators: Mapping[str, nn.Module]) -> dict[str, float]:
        """Held-out metrics of ``generators`` (what ``Recipe.generate`` runs, by network name)."""
        from shards.stream import StreamPosition

        was_training = {name: g.training for name, g in generators.items()}
        for g in generators.values():
            g.eval()
        sums: dict[str, torch.Tensor] = {"images": torch.zeros((), dtype=torch.float64)}

        def add(name: str, per_image: torch.Tensor) -> None:
            sums[name] = sums.get(name, 0.0) + per_image.double().sum().cpu()

        try:
            batches = iter(self.stream.iter_from(StreamPosition(epoch=0, step=0)))
            for _ in range(min(self.cfg.train.eval_batches, self.stream.batches_per_epoch)):
                batch = next(batches)
                x = self.recipe.inputs({k: v.to(self.ctx.device) if torch.is_tensor(v) else v
                                        for k, v in batch.items()})
                nets = dict(generators)
                fake = to_unit_range(self.recipe.generate(nets, x))
                real = to_unit_range(self.recipe.target(x))
                add("l1", l1_per_image(fake, real))
                add("ssim", ssim_per_image(fake, real))
                add("psnr", psnr_per_image(fake, real).clamp(max=100.0))
                for name, values in self.recipe.validation_metrics(nets, x).items():
                    add(name, values)
                add("images", torch.ones(fake.shape[0]))
        finally:
            for name, g in generators.items():
                g.train(was_training[name])
        names = sorted(sums)  # the same on every rank: the recipe's metric names
        totals = torch.stack([sums[n].reshape(()) for n in names])
        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            dist.all_reduce(totals, op=dist.ReduceOp.SUM)
        values = dict(zip(names, totals.tolist()))
        count = max(values.pop("images", 0.0), 1.0)
        return {f"val/{name}": v / count for name, v in values.items()} | {"val/images": count}
