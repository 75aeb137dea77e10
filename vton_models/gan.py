"""The conditional-GAN plumbing every adversarial recipe shares (SPADE's ``discriminate()``).

A conditional D judges an image beside its condition (``[image; condition]`` or, for a parse
predicted from its input, ``[condition; image]``). D's terms run fake and real through D in ONE
pass over the batch axis: the networks use instance norm, which is per sample, so this equals two
passes at half the launches, and DeepSpeed ZeRO-2 sees one backward per engine. G's terms run the
fake with D's hidden features, and feature matching takes its targets from a real pass without a
graph. The perceptual loss's VGG is built on first use: it is a frozen loss network, not a
trainable one, and a stage whose ``vgg`` weight is 0 never needs the weight file.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

from vton_models.losses import PIX2PIXHD_VGG_WEIGHTS, GANLoss, VGGPerceptualLoss, feature_matching_loss

Tensor = torch.Tensor


class ConditionalGAN:
    """D's view of images beside their condition, for one recipe (its GAN mode and concat order)."""

    def __init__(self, gan_mode: str, condition_first: bool = False) -> None:
        self.loss = GANLoss(gan_mode)
        self.condition_first = condition_first

    def pair(self, image: Tensor, condition: Tensor) -> Tensor:
        return torch.cat([condition, image], 1) if self.condition_first else torch.cat([image, condition], 1)

    def discriminate(self, D: nn.Module, fake: Tensor, real: Tensor, condition: Tensor) -> tuple:
        """(D's output on the fakes, on the reals) from one pass; per scale lists for a multi-scale D."""
        scores = D(torch.cat([self.pair(fake, condition), self.pair(real, condition)], 0))
        if isinstance(scores, (list, tuple)):
            fake_s, real_s = zip(*(s.chunk(2, 0) for s in scores))
            return list(fake_s), list(real_s)
        return scores.chunk(2, dim=0)

    def d_terms(self, D: nn.Module, fake: Tensor, real: Tensor, condition: Tensor) -> dict[str, Tensor]:
        """``d_real`` and ``d_fake`` (``fake`` must be detached: D's phase does not reach G)."""
        pred_fake, pred_real = self.discriminate(D, fake, real, condition)
        return {"d_real": self.loss(pred_real, True, for_discriminator=True),
                "d_fake": self.loss(pred_fake, False, for_discriminator=True)}

    def g_terms(self, D: nn.Module, fake: Tensor, condition: Tensor,
                real: Tensor | None = None) -> tuple[Tensor, Tensor | None]:
        """(``adv``, ``fm``): G's adversarial term, and feature matching on D's hidden activations
        when ``real`` is given (None otherwise). D is frozen by the trainer during G's phase."""
        if real is None:
            return self.loss(D(self.pair(fake, condition)), True, for_discriminator=False), None
        pred, fake_feats = D(self.pair(fake, condition), return_features=True)
        adv = self.loss(pred, True, for_discriminator=False)
        with torch.no_grad():  # the real pass only provides targets: no graph, no activations kept
            _, real_feats = D(self.pair(real, condition), return_features=True)
        return adv, feature_matching_loss(real_feats, fake_feats)


class LazyLossNetwork:
    """A frozen loss network (VGG, a face-identity network) built on first use and kept on the device of the images it was
    last given: a stage whose term weighs 0 never loads the weight file, and a recipe built on the
    driver holds no network."""

    def __init__(self, build: Callable[[], nn.Module]) -> None:
        self._build = build
        self._net: nn.Module | None = None

    @property
    def network(self) -> nn.Module | None:
        """The loss network, or None while it has not been needed."""
        return self._net

    def on(self, device: torch.device) -> nn.Module:
        """The network, built if it was not yet and moved to ``device`` if it is elsewhere."""
        if self._net is None:
            self._net = self._build()
        if next(self._net.parameters()).device != device:
            self._net = self._net.to(device)
        return self._net

    def __call__(self, fake: Tensor, real: Tensor, *args, **kwargs):
        return self.on(fake.device)(fake, real, *args, **kwargs)


class LazyPerceptual(LazyLossNetwork):
    """A ``VGGPerceptualLoss`` (relu1_1..relu5_1, weighted), built on first use."""

    def __init__(self, layer_weights: Sequence[float] = PIX2PIXHD_VGG_WEIGHTS) -> None:
        self.layer_weights = tuple(float(w) for w in layer_weights)
        super().__init__(lambda: VGGPerceptualLoss(layer_weights=self.layer_weights))

    def target_features(self, real: Tensor) -> list[Tensor]:
        """``VGGPerceptualLoss.target_features``: a real image's activations, to share between terms."""
        return self.on(real.device).target_features(real)
