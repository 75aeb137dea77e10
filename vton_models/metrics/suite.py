"""All evaluation metrics in one streaming accumulator: ``update`` per batch, reduce, ``compute``.

The unit every caller uses (``vton eval``'s Ray tasks, the benchmark, tests): it owns the
networks (loaded once), quantises images exactly like writing 8-bit PNGs would, runs the
Inception network once per image set (fake, real, masked fake) and keeps only fixed-size
statistics, so memory does not grow with the test set. State moves between processes as a plain
dict of tensors (``state_dict`` / ``merge_state``) or through torch.distributed (``all_reduce``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import torch

from vton_models.metrics.checks import check_images, check_pair
from vton_models.metrics.distribution import (FeatureReservoir, FeatureStats, InceptionScoreStats, SplitInceptionScore,
                                              _distributed, frechet_distance, kernel_inception_distance)
from vton_models.metrics.masked import MASK_REGIONS, apply_mask, region_mask
from vton_models.metrics.paired import (l1_per_image, ms_ssim_scales, psnr_per_image, ssim_and_ms_ssim_per_image,
                                       ssim_per_image)
from vton_models.metrics.transfer import TransferScore

#: Paired metrics averaged per image; PSNR is capped (identical images give +inf, which would
#: make a mean meaningless); the count of capped images is reported beside it.
PAIRED = ("ssim", "mask_ssim", "ms_ssim", "psnr", "l1", "lpips")
PSNR_CAP = 100.0


def quantize(images: torch.Tensor) -> torch.Tensor:
    """[0, 1] floats -> the values an 8-bit PNG of them holds (round half to even, as ``/255``)."""
    return torch.round(images.clamp(0, 1) * 255.0) / 255.0


@dataclass(frozen=True)
class SuiteOptions:
    """Which metrics run: ``paired`` needs ground truth; ``masked`` needs parse maps."""

    paired: bool = True
    masked: bool = True
    lpips_net: str = "alex"
    fid_dims: int = 2048  # pytorch-fid --dims; anything but 2048 is for tests, not the protocol
    channels_last: bool = True  # same numbers (float32 conv, different loop order), ~1.6x faster on CPU
    is_splits: int = 1  # > 1 adds IS / mask-IS as mean and std over that many splits (seed 002's 10)
    mask_region: str = "foreground"  # what mask-SSIM / mask-IS keep: foreground | cloth | face_hair (seed 004)
    #: The pretrained networks to load: "inception" (FID, KID, IS, mask-IS), "lpips" (LPIPS). Without
    #: one, its metrics are not computed and its weight file is not needed (a gate judging on L1).
    networks: tuple[str, ...] = ("inception", "lpips")  # = METRIC_NETWORK_NAMES (defined below)

    def __post_init__(self) -> None:
        if self.mask_region not in MASK_REGIONS:
            raise ValueError(f"mask_region {self.mask_region!r}: allowed {list(MASK_REGIONS)}")
        unknown = set(self.networks) - set(METRIC_NETWORK_NAMES)
        if unknown:
            raise ValueError(f"networks {sorted(unknown)}: allowed {list(METRIC_NETWORK_NAMES)}")


#: The metrics that need a pretrained network, and which one.
METRIC_NETWORKS = {"fid": "inception", "kid": "inception", "is": "inception", "mask_is": "inception",
                   "is_real": "inception", "lpips": "lpips"}
#: Every network the suite can load, in the order it loads them (``SuiteOptions.networks``' default).
METRIC_NETWORK_NAMES: tuple[str, ...] = SuiteOptions.networks


def networks_for(metrics: Sequence[str]) -> tuple[str, ...]:
    """The ``SuiteOptions.networks`` that computing ``metrics`` needs (in a stable order)."""
    needed = {METRIC_NETWORKS[m] for m in metrics if m in METRIC_NETWORKS}
    return tuple(n for n in METRIC_NETWORK_NAMES if n in needed)


class MetricSuite:
    def __init__(self, options: SuiteOptions = SuiteOptions(), device: torch.device | str = "cpu") -> None:
        from vton_models import weights
        from vton_models.metrics.networks import LPIPS_BACKBONES

        self.options, self.device = options, torch.device(device)
        # The files are checked now (a missing one is an error before any image is generated); the
        # networks load on the first ``update``, so a suite that only merges and computes (the
        # driver of ``vton eval``) never builds Inception or LPIPS.
        if "inception" in options.networks:
            weights.require("inception_fid")
        if options.paired and "lpips" in options.networks:
            if options.lpips_net not in LPIPS_BACKBONES:
                raise ValueError(f"lpips_net {options.lpips_net!r}: allowed {sorted(LPIPS_BACKBONES)}")
            weights.require(LPIPS_BACKBONES[options.lpips_net])
        self._fmt = torch.channels_last if options.channels_last else torch.contiguous_format
        self._inception: torch.nn.Module | None = None
        self._lpips: torch.nn.Module | None = None
        self.sums = torch.zeros(len(PAIRED), dtype=torch.float64)
        self.psnr_capped = 0
        self.paired_count = 0
        self.images_seen = 0
        d = options.fid_dims
        self.fid_fake, self.fid_real = FeatureStats(d), FeatureStats(d)
        self.kid_fake, self.kid_real = FeatureReservoir(dim=d), FeatureReservoir(dim=d)
        self.is_fake, self.is_real, self.is_masked = InceptionScoreStats(), InceptionScoreStats(), InceptionScoreStats()
        if options.is_splits < 1:
            raise ValueError(f"is_splits must be >= 1, got {options.is_splits}")
        #: name -> split IS of the generated, real and masked generated images (none for one split).
        self.is_split: dict[str, SplitInceptionScore] = {} if options.is_splits == 1 else {
            name: SplitInceptionScore(options.is_splits) for name in ("is", "is_real", "mask_is")}
        self.transfer = TransferScore()  # unpaired only: did the new garment go on?
        self.image_size: tuple[int, int] | None = None

    @property
    def inception(self) -> torch.nn.Module:
        if self._inception is None:
            from vton_models.metrics.networks import InceptionFeatures

            self._inception = InceptionFeatures(self.options.fid_dims).to(self.device, memory_format=self._fmt)
        return self._inception

    @property
    def lpips(self) -> torch.nn.Module:
        if self._lpips is None:
            from vton_models.metrics.networks import load_lpips

            self._lpips = load_lpips(self.options.lpips_net, self.device)
        return self._lpips

    # -------------------------------------------------------------------------- accumulation
    @torch.no_grad()
    def update(self, fake: torch.Tensor, real: torch.Tensor, keys: Sequence[str],
               parse: torch.Tensor | None = None, garment: tuple[torch.Tensor, torch.Tensor] | None = None) -> None:
        """One batch: ``fake``/``real`` (B, 3, H, W) in [0, 1]; ``keys`` name the samples (for KID's
        sample); ``parse`` (B, H, W) LIP labels of the real person (for the masked metrics);
        unpaired, ``garment`` = (the new garment (B, 3, H, W) in [0, 1], its mask (B, 1, H, W)) for
        the transfer score, with ``real`` the person in their own garment."""
        check_pair(fake, real) if self.options.paired else (check_images(fake, "fake"), check_images(real, "real"))
        if len(keys) != fake.shape[0]:
            raise ValueError(f"keys: {len(keys)} for a batch of {fake.shape[0]} images")
        if self.image_size is None:
            self.image_size = (int(fake.shape[-2]), int(fake.shape[-1]))
        elif self.image_size != tuple(fake.shape[-2:]):
            raise ValueError(f"images changed size within one evaluation: {self.image_size} then "
                             f"{tuple(fake.shape[-2:])}")
        fake, real = quantize(fake.to(self.device)), quantize(real.to(self.device))
        masked = None
        if self.options.masked:
            if parse is None:
                raise ValueError("masked metrics need the real person's parse map (or SuiteOptions(masked=False))")
            mask = region_mask(parse.to(self.device), self.options.mask_region)
            masked = (apply_mask(fake, mask), apply_mask(real, mask))
        self.images_seen += fake.shape[0]
        self._paired(fake, real, masked)
        self._features(fake, real, keys, masked)
        if not self.options.paired and garment is not None and parse is not None:
            cloth, cloth_mask = garment
            self.transfer.update(fake, real, parse.to(self.device), quantize(cloth.to(self.device)),
                                 cloth_mask.to(self.device))

    def _paired(self, fake: torch.Tensor, real: torch.Tensor, masked: tuple | None) -> None:
        if not self.options.paired:
            return
        psnr = psnr_per_image(fake, real)
        ssim, ms_ssim = ssim_and_ms_ssim_per_image(fake, real)
        values = {
            "ssim": ssim,
            "ms_ssim": ms_ssim,
            "psnr": psnr.clamp(max=PSNR_CAP),
            "l1": l1_per_image(fake, real),
        }
        if "lpips" in self.options.networks:
            values["lpips"] = self.lpips(fake.contiguous(), real.contiguous(), normalize=True).flatten().cpu()
        if masked is not None:
            values["mask_ssim"] = ssim_per_image(*masked)
        for i, name in enumerate(PAIRED):
            if name in values:
                self.sums[i] += values[name].double().sum().cpu()
        self.psnr_capped += int((psnr >= PSNR_CAP).sum())
        self.paired_count += fake.shape[0]

    def _features(self, fake: torch.Tensor, real: torch.Tensor, keys: Sequence[str], masked: tuple | None) -> None:
        if "inception" not in self.options.networks:
            return
        pool_f, logits_f = self.inception(fake.contiguous(memory_format=self._fmt))
        pool_r, logits_r = self.inception(real.contiguous(memory_format=self._fmt))
        self.fid_fake.update(pool_f)
        self.fid_real.update(pool_r)
        self.kid_fake.update(pool_f, keys)
        self.kid_real.update(pool_r, keys)
        self.is_fake.update(logits_f)
        self.is_real.update(logits_r)
        logits = {"is": logits_f, "is_real": logits_r}
        if masked is not None:
            logits["mask_is"] = self.inception(masked[0].contiguous(memory_format=self._fmt))[1]
            self.is_masked.update(logits["mask_is"])
        for name, split in self.is_split.items():
            if name in logits:
                split.update(logits[name], keys)

    # ------------------------------------------------------------------------------ reduction
    def _parts(self) -> list:
        return [self.fid_fake, self.fid_real, self.kid_fake, self.kid_real, self.is_fake, self.is_real, self.is_masked,
                *self.is_split.values()]

    def all_reduce(self) -> None:
        """Sum every statistic over the torch.distributed group (no-op outside one)."""
        if not _distributed():
            return
        import torch.distributed as dist

        counts = torch.tensor([self.psnr_capped, self.paired_count, self.images_seen, *self.transfer.state()],
                              dtype=torch.float64)
        dist.all_reduce(self.sums)
        dist.all_reduce(counts)
        self.psnr_capped, self.paired_count, self.images_seen = int(counts[0]), int(counts[1]), int(counts[2])
        self.transfer = TransferScore()
        self.transfer.merge([int(c) for c in counts[3:]])
        for part in self._parts():
            part.all_reduce()

    def state_dict(self) -> dict[str, Any]:
        """Everything ``merge_state`` needs, as picklable CPU objects (Ray task results)."""
        return {"sums": self.sums, "psnr_capped": self.psnr_capped, "paired_count": self.paired_count,
                "images_seen": self.images_seen, "image_size": self.image_size, "parts": [p.__dict__ for p in self._parts()],
                "transfer": self.transfer.state()}

    def merge_state(self, state: dict[str, Any]) -> None:
        self.sums += state["sums"]
        self.psnr_capped += state["psnr_capped"]
        self.paired_count += state["paired_count"]
        self.images_seen += state["images_seen"]
        self.transfer.merge(state.get("transfer", [0, 0, 0]))
        if self.image_size is None:
            self.image_size = state["image_size"]
        elif state["image_size"] not in (None, self.image_size):
            raise ValueError(f"merging results at {state['image_size']} into {self.image_size}")
        for part, other in zip(self._parts(), state["parts"]):
            clone = type(part).__new__(type(part))
            clone.__dict__.update(other)
            part.merge(clone)

    # -------------------------------------------------------------------------------- results
    def compute(self) -> dict[str, float]:
        """Final numbers; paired metrics are means over images."""
        n = self.images_seen
        if n == 0:
            raise ValueError("no images were evaluated")
        out: dict[str, float] = {"images": float(n)}
        if self.options.paired:
            for i, name in enumerate(PAIRED):
                skipped = (name == "mask_ssim" and not self.options.masked) or (
                    name == "lpips" and "lpips" not in self.options.networks)
                if skipped:
                    continue
                out[name] = float(self.sums[i] / self.paired_count)
            out["psnr_capped_images"] = float(self.psnr_capped)
            assert self.image_size is not None
            out["ms_ssim_scales"] = float(ms_ssim_scales(*self.image_size))
        if "inception" in self.options.networks:
            out.update(self._inception_metrics())
        if self.transfer.judged or self.transfer.unjudged:
            transfer = self.transfer.compute()
            out.update({k: v for k, v in transfer.items() if v is not None})
        return out

    def _inception_metrics(self) -> dict[str, float]:
        out: dict[str, float] = {"fid_dims": float(self.options.fid_dims)}
        out["fid"] = frechet_distance(self.fid_fake, self.fid_real)
        out["kid"] = kernel_inception_distance(self.kid_fake, self.kid_real)
        out["is"] = self.is_fake.score()
        out["is_real"] = self.is_real.score()
        if self.options.masked:
            out["mask_is"] = self.is_masked.score()
        for name, split in self.is_split.items():
            if name != "mask_is" or self.options.masked:
                out[f"{name}_split_mean"], out[f"{name}_split_std"] = split.score()
        if self.is_split:
            out["is_splits"] = float(self.options.is_splits)
        return out
