"""``vton models summary``: build a recipe's networks and report their size and output shapes.

Running one real forward pass (on zeros, without gradients) catches what a parameter count
cannot: a resolution the architecture does not support, or a width that breaks a skip
concatenation, before a cluster job is submitted.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from vton_models.recipe import RecipeContext
from vton_models.registry import build_recipe


def _first_tensor(output: Any) -> torch.Tensor:
    """The main output of a network that may also return extras (e.g. D's features)."""
    while isinstance(output, (list, tuple)):
        output = output[0]
    return output


def _describe(network: nn.Module, image_size: tuple[int, int]) -> dict[str, Any]:
    info: dict[str, Any] = {
        "parameters": sum(p.numel() for p in network.parameters()),
        "trainable_parameters": sum(p.numel() for p in network.parameters() if p.requires_grad),
    }
    head = getattr(network, "aux_decoder", None)  # an auxiliary head counts inside the network's total
    if isinstance(head, nn.Module):
        info["aux_parameters"] = sum(p.numel() for p in head.parameters())
    channels = getattr(network, "input_channels", None)
    info["input_channels"] = channels
    if channels is None:
        # Networks whose input is not a single image-sized tensor cannot be probed generically.
        info["output_shape"] = None
        return info
    network.eval()  # no spectral-norm power iteration or dropout during the probe
    with torch.no_grad():
        output = network(torch.zeros(1, channels, *image_size))
    info["output_shape"] = list(_first_tensor(output).shape)
    return info


def summarize(
    recipe_name: str, model_options: Mapping[str, Any], image_size: tuple[int, int] = (256, 192)
) -> dict[str, Any]:
    """``{"recipe", "image_size", "networks": {name: {parameters, trainable_parameters,
    input_channels, output_shape}}}`` for ``recipe_name`` built with ``model_options``.

    Unknown options raise the recipe's own ``ValueError`` naming them.
    """
    height, width = (int(v) for v in image_size)
    context = RecipeContext(image_size=(height, width), model=dict(model_options))
    recipe = build_recipe(recipe_name, context)
    networks = recipe.build_networks()
    return {
        "recipe": recipe_name,
        "image_size": [height, width],
        "networks": {name: _describe(net, (height, width)) for name, net in networks.items()},
        "variants": _variants(recipe_name, context),
    }


def _variants(recipe_name: str, context: RecipeContext) -> dict[str, dict[str, dict[str, int]]]:
    """``{"option=value": {network: {parameters, input_channels}}}`` for every value of every option
    the recipe lists in ``input_variants`` (the rest of the options as given)."""
    out = {}
    for option, values in type(build_recipe(recipe_name, context)).input_variants.items():
        for value in values:
            model = {**context.model, option: value}
            if value != context.model.get(option, None):
                model.pop("gmm", None)  # a stage reference belongs to one variant; the counts do not depend on it
            variant = build_recipe(recipe_name, RecipeContext(context.image_size, model, context.loss_weights,
                                                              context.gan_mode))
            out[f"{option}={value}"] = {
                name: {"parameters": sum(p.numel() for p in net.parameters()),
                       "input_channels": getattr(net, "input_channels", None)}
                for name, net in variant.build_networks().items()}
    return out
