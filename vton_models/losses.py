"""Loss terms shared by the recipes: adversarial, perceptual, feature matching, gradient penalty, L1.

Every function returns an *unweighted* scalar; recipes name the terms and the base recipe's
``weighted_sum`` applies the configured weights, so any weight can be swept from the config.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

Tensor = torch.Tensor

GAN_MODES = ("lsgan", "hinge", "vanilla", "wgan")


class GANLoss(nn.Module):
    """Adversarial loss with SPADE's interface: ``loss(pred, target_is_real, for_discriminator)``.

    Modes and what each returns (p = discriminator output, averaged over every element):

    ========  =====================  =====================  ==========================
    mode      D, real                D, fake                G (target_is_real=True)
    ========  =====================  =====================  ==========================
    lsgan     (p - 1)^2              p^2                    (p - 1)^2
    vanilla   softplus(-p) (BCE)     softplus(p)            softplus(-p)
    hinge     relu(1 - p)            relu(1 + p)            -p
    wgan      -p                     p                      -p
    ========  =====================  =====================  ==========================

    ``pred`` may also be a list (one entry per discriminator scale, or a ``(prediction,
    features)`` pair's prediction per scale); the result is the mean over the list so the loss
    scale does not grow with the number of scales.
    """

    def __init__(self, mode: str = "lsgan", real_label: float = 1.0, fake_label: float = 0.0) -> None:
        super().__init__()
        if mode not in GAN_MODES:
            raise ValueError(f"gan_mode: unknown mode {mode!r}; allowed: {list(GAN_MODES)}")
        self.mode = mode
        self.real_label = real_label
        self.fake_label = fake_label

    def forward(self, pred: Tensor | Sequence[Tensor], target_is_real: bool, for_discriminator: bool = True) -> Tensor:
        if isinstance(pred, (list, tuple)):
            if not pred:
                raise ValueError("GANLoss: empty list of predictions")
            losses = [self._single(p, target_is_real, for_discriminator) for p in pred]
            return torch.stack(losses).mean()
        return self._single(pred, target_is_real, for_discriminator)

    def _single(self, pred: Tensor, target_is_real: bool, for_discriminator: bool) -> Tensor:
        if not for_discriminator and not target_is_real:
            raise ValueError(
                "GANLoss: the generator loss is defined for target_is_real=True only "
                "(the generator wants its samples judged real)"
            )
        pred = pred.float()  # keep the reduction in fp32 under autocast
        if self.mode == "lsgan":
            target = self.real_label if target_is_real else self.fake_label
            return F.mse_loss(pred, torch.full_like(pred, target))
        if self.mode == "vanilla":
            target = self.real_label if target_is_real else self.fake_label
            return F.binary_cross_entropy_with_logits(pred, torch.full_like(pred, target))
        if self.mode == "hinge":
            if not for_discriminator:
                return -pred.mean()
            return F.relu(1.0 - pred).mean() if target_is_real else F.relu(1.0 + pred).mean()
        # wgan
        return -pred.mean() if target_is_real else pred.mean()


def l1_loss(generated: Tensor, target: Tensor) -> Tensor:
    """Mean absolute pixel error (paper Eq. 27); a named function so recipes read like the paper."""
    return F.l1_loss(generated, target)


def smooth_l1_loss(generated: Tensor, target: Tensor, beta: float = 1.0) -> Tensor:
    """Huber-like pixel error (seed 002's ``L_pixel``): quadratic below ``beta``, so on [-1, 1] images
    it is about 0.5 e^2, roughly 8x smaller than L1 at typical errors (pix2pix's weight 100 offsets it)."""
    return F.smooth_l1_loss(generated.float(), target.float(), beta=beta)


def gram_matrix(features: Tensor) -> Tensor:
    """(B, C, H, W) -> (B, C, C): ``F F^T / (H W)`` (Johnson et al.'s style statistics)."""
    b, c, h, w = features.shape
    flat = features.float().reshape(b, c, h * w)
    return torch.bmm(flat, flat.transpose(1, 2)) / (h * w)


def total_variation(mask: Tensor) -> Tensor:
    """Mean squared horizontal plus vertical difference: ``||grad M||_2`` as a mean square (seed 002's
    attention smoothness term); zero exactly for a constant map."""
    m = mask.float()
    return (m[..., 1:, :] - m[..., :-1, :]).pow(2).mean() + (m[..., :, 1:] - m[..., :, :-1]).pow(2).mean()


def focal_loss(logits: Tensor, labels: Tensor, gamma: float = 2.0) -> Tensor:
    """Per-pixel ``-(1 - p_t)^gamma log p_t``, averaged (Lin et al.; seed 004's parse loss, gamma 2 and
    no class balance, as the paper gives none). ``gamma = 0`` is the cross-entropy."""
    logp = F.log_softmax(logits.float(), 1).gather(1, labels[:, None]).squeeze(1)
    return (-(1 - logp.exp()).pow(gamma) * logp).mean()


def conductible_cycle(warped: Tensor, worn: Tensor, cycled: Tensor, cloth: Tensor) -> Tensor:
    """Seed 004's cycle-consistent warping loss (Eqs. 8-9): the forward warp must match the garment
    as worn, ``|C_w - C_t|``, and warping it back must return the in-shop garment, ``|C^ - C|``."""
    return l1_loss(warped, worn) + l1_loss(cycled, cloth)


def weighted_cross_entropy(logits: Tensor, labels: Tensor, class_weights: Tensor) -> Tensor:
    """Per-pixel cross-entropy with a weight per class, normalised by the weights of the pixels' true
    classes (``F.cross_entropy(weight=...)``): seed 003 weights background and skin up so the
    auxiliary parse learns the body the try-on must draw, not only the large garment region."""
    return F.cross_entropy(logits.float(), labels, weight=class_weights.to(logits.device, torch.float32))


def second_order_constraint(theta: Tensor, grid_size: int) -> Tensor:
    """Mean |second difference| of the control-point offsets along both grid axes.

    The rest grid is regular, so second differences of offsets equal those of absolute positions: the
    term is zero for any affine warp and penalises only bending and uneven spacing (VITON-HD Sec. 3.2).
    """
    n = grid_size * grid_size
    pts = torch.stack([theta[:, :n], theta[:, n:]], -1).reshape(-1, grid_size, grid_size, 2)
    d_i = pts[:, :-2] - 2 * pts[:, 1:-1] + pts[:, 2:]
    d_j = pts[:, :, :-2] - 2 * pts[:, :, 1:-1] + pts[:, :, 2:]
    return d_i.abs().mean() + d_j.abs().mean()


def feature_matching_loss(
    real_features: Sequence[Tensor] | Sequence[Sequence[Tensor]],
    fake_features: Sequence[Tensor] | Sequence[Sequence[Tensor]],
) -> Tensor:
    """pix2pixHD feature matching on *discriminator* features (paper Eq. 28).

    Sum over layers of the mean L1 distance between the discriminator's hidden activations for
    the real and the generated input; real activations are detached so only the generator is
    pulled. Lists of lists (multi-scale discriminators) are averaged over scales.
    """
    if len(real_features) != len(fake_features) or not real_features:
        raise ValueError(
            f"feature_matching_loss: got {len(real_features)} real and {len(fake_features)} fake "
            "feature entries; they must be equal and non-empty"
        )
    if isinstance(real_features[0], (list, tuple)):
        per_scale = [feature_matching_loss(r, f) for r, f in zip(real_features, fake_features)]
        return torch.stack(per_scale).mean()
    total = fake_features[0].new_zeros((), dtype=torch.float32)
    for real, fake in zip(real_features, fake_features):
        if real.shape != fake.shape:
            raise ValueError(
                f"feature_matching_loss: real feature {tuple(real.shape)} and fake feature "
                f"{tuple(fake.shape)} differ in shape"
            )
        total = total + F.l1_loss(fake.float(), real.detach().float())
    return total


def gradient_penalty(
    discriminator: Callable[[Tensor], Tensor | Sequence[Tensor]],
    real: Tensor,
    fake: Tensor,
    condition: Tensor | None = None,
) -> Tensor:
    """WGAN-GP (Gulrajani et al., 2017): ``E[(||grad_x D(x_hat)||_2 - 1)^2]``.

    ``x_hat`` is a per-sample random interpolation of real and fake images; the condition (if
    any) is concatenated unchanged, so the gradient is taken w.r.t. the image only. The graph is
    kept (``create_graph=True``) so that backpropagating the penalty reaches D's parameters
    (double backward). Patch outputs are summed, i.e. the penalty constrains the gradient of the
    total patch score, as in pix2pix's implementation.
    """
    if real.shape != fake.shape:
        raise ValueError(f"gradient_penalty: real {tuple(real.shape)} and fake {tuple(fake.shape)} differ")
    alpha = torch.rand(real.shape[0], *([1] * (real.dim() - 1)), device=real.device, dtype=real.dtype)
    x_hat = (alpha * real.detach() + (1 - alpha) * fake.detach()).requires_grad_(True)
    d_input = x_hat if condition is None else torch.cat([x_hat, condition.detach()], dim=1)
    out = discriminator(d_input)
    outputs = out if isinstance(out, (list, tuple)) else [out]
    score = sum(o.float().sum() for o in outputs)
    (grad,) = torch.autograd.grad(score, x_hat, create_graph=True)
    norms = grad.flatten(1).norm(2, dim=1)
    return ((norms - 1.0) ** 2).mean()


#: VGG19 ``features`` length up to and including each named ReLU (``features[:n]`` ends at it).
VGG19_LAYERS = {"relu1_1": 2, "relu1_2": 4, "relu2_1": 7, "relu2_2": 9, "relu3_1": 12, "relu4_1": 21, "relu5_1": 30}
#: VGG19 ``features`` index ranges ending at relu1_1, relu2_1, relu3_1, relu4_1, relu5_1.
_VGG19_SLICES = ((0, 2), (2, 7), (7, 12), (12, 21), (21, 30))
#: pix2pixHD's layer weights: deeper layers count more, relu1_1 least.
PIX2PIXHD_VGG_WEIGHTS = (1.0 / 32, 1.0 / 16, 1.0 / 8, 1.0 / 4, 1.0)
_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)


class _FrozenLossNetwork(nn.Module):
    """A pretrained network a loss reads through: never trains, so ``.train()`` calls propagated
    from a parent module leave it in eval mode."""

    def train(self, mode: bool = True) -> _FrozenLossNetwork:
        return super().train(False)


class _ImageNetFeatures(_FrozenLossNetwork):
    """A frozen network fed [-1, 1] images mapped to [0, 1] and ImageNet-normalised."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(_IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(_IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def _normalize(self, x: Tensor) -> Tensor:
        return ((x + 1.0) / 2.0 - self.mean) / self.std


class VGGPerceptualLoss(_ImageNetFeatures):
    """Weighted L1 between VGG19 relu1_1..relu5_1 activations of two [-1, 1] images.

    Inputs are mapped to [0, 1] and ImageNet-normalised first (paper Eq. 26), because that is the
    distribution the pretrained VGG was trained on. The network is frozen and kept in eval mode;
    the target's features are computed without a graph. ``features`` defaults to the pretrained
    VGG19 from ``vton_models.weights`` (which raises if the weight file is missing: a perceptual
    loss on random weights would silently train garbage); pass a module to use another source.
    """

    def __init__(
        self,
        layer_weights: Sequence[float] = PIX2PIXHD_VGG_WEIGHTS,
        features: nn.Module | None = None,
    ) -> None:
        super().__init__()
        weights = [float(w) for w in layer_weights]
        if len(weights) != len(_VGG19_SLICES) or any(w < 0 for w in weights):
            raise ValueError(
                f"VGGPerceptualLoss: layer_weights needs {len(_VGG19_SLICES)} non-negative numbers "
                f"(relu1_1..relu5_1), got {list(layer_weights)}"
            )
        if features is None:
            from vton_models.weights import load_vgg19_features

            features = load_vgg19_features()
        layers = list(features.children())
        if len(layers) < _VGG19_SLICES[-1][1]:
            raise ValueError(f"VGGPerceptualLoss: features has {len(layers)} layers, needs VGG19's first 30")
        self.slices = nn.ModuleList(nn.Sequential(*layers[a:b]) for a, b in _VGG19_SLICES)
        self.layer_weights = weights
        self.requires_grad_(False)
        self.eval()

    def target_features(self, target: Tensor) -> list[Tensor]:
        """The target's activations, without a graph: compute them once and pass them to every term
        that compares an image with the same real one (seed 004's coarse and final try-on)."""
        with torch.no_grad():
            y = self._normalize(target)
            features = []
            for block in self.slices:
                y = block(y)
                features.append(y)
        return features

    def forward(self, generated: Tensor, target: Tensor, target_features: Sequence[Tensor] | None = None) -> Tensor:
        if generated.shape != target.shape or generated.shape[1] != 3:
            raise ValueError(
                f"VGGPerceptualLoss: expects two (B, 3, H, W) images, got {tuple(generated.shape)} "
                f"and {tuple(target.shape)}"
            )
        x = self._normalize(generated)
        if target_features is None:
            target_features = self.target_features(target)
        loss = generated.new_zeros((), dtype=torch.float32)
        for block, weight, y_feat in zip(self.slices, self.layer_weights, target_features):
            x = block(x)
            if weight:
                loss = loss + weight * F.l1_loss(x.float(), y_feat.float())
        return loss


class VGGFeatureStyleLoss(_ImageNetFeatures):
    """``(feat, style)``: L1 between one VGG19 layer's activations of two [-1, 1] images, and L1
    between their Gram matrices (seed 002: relu1_2, "conv1_2"). One pass per image serves both
    terms. ImageNet-normalised, frozen, weights from ``vton_models.weights`` (refused when missing),
    the target's features without a graph, as ``VGGPerceptualLoss``."""

    def __init__(self, layer: str = "relu1_2", features: nn.Module | None = None) -> None:
        super().__init__()
        if layer not in VGG19_LAYERS:
            raise ValueError(f"VGGFeatureStyleLoss: unknown layer {layer!r}; allowed: {list(VGG19_LAYERS)}")
        if features is None:
            from vton_models.weights import load_vgg19_features

            features = load_vgg19_features()
        self.layer = layer
        self.features = nn.Sequential(*list(features.children())[:VGG19_LAYERS[layer]])
        self.requires_grad_(False)
        self.eval()

    def forward(self, generated: Tensor, target: Tensor, style: bool = True) -> tuple[Tensor, Tensor | None]:
        """``style=False`` skips both Gram matrices (a caller weighting only the feature term)."""
        if generated.shape != target.shape or generated.shape[1] != 3:
            raise ValueError(f"VGGFeatureStyleLoss: expects two (B, 3, H, W) images, got {tuple(generated.shape)} "
                             f"and {tuple(target.shape)}")
        x = self.features(self._normalize(generated)).float()
        with torch.no_grad():
            y = self.features(self._normalize(target)).float()
        return F.l1_loss(x, y), (F.l1_loss(gram_matrix(x), gram_matrix(y)) if style else None)


class FaceIdentityLoss(_FrozenLossNetwork):
    """L1 between the identity embeddings of two [-1, 1] RGB face crops (seed 004's ``L_id``).

    The embedding network is pluggable (``vton_models.weights`` names: SphereFace 20a, the paper's);
    it is loaded from its released file, frozen and kept in eval mode, and refused, with where to put
    the file, when the file is missing: a random face network would silently train garbage. Crops
    must be the network's input size (112x96); they are turned into its convention here (BGR,
    ``(x - 127.5) / 128``). The target's embedding is computed without a graph.
    """

    def __init__(self, backbone: str = "sphereface20a", network: nn.Module | None = None) -> None:
        super().__init__()
        if network is None:
            from vton_models.weights import load_face_identity

            network = load_face_identity(backbone)
        self.network = network.eval().requires_grad_(False)

    @staticmethod
    def _prepare(x: Tensor) -> Tensor:
        return x[:, [2, 1, 0]] * (127.5 / 128.0)  # [-1, 1] RGB -> (BGR * 255 - 127.5) / 128

    def forward(self, generated: Tensor, target: Tensor) -> Tensor:
        if generated.shape != target.shape:
            raise ValueError(f"FaceIdentityLoss: crops differ in shape, {tuple(generated.shape)} vs {tuple(target.shape)}")
        with torch.no_grad():
            reference = self.network(self._prepare(target)).float()
        return F.l1_loss(self.network(self._prepare(generated)).float(), reference)
