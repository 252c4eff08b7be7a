"""The networks: the fast small CNN for images (:mod:`lbw_utils.models.cnn`) and the name -> nationality
models (:mod:`lbw_utils.models.recurrent`), built by name with :func:`make_model`."""

from __future__ import annotations

import torch
from torch import nn

from lbw_utils.models.cnn import CNN_SIZES, STEMS, WHITENING_IMAGES, FastCNN, PatchWhitening, cnn_options
from lbw_utils.models.recurrent import NAME_MODELS

MODELS = ("cnn", *NAME_MODELS)


def make_model(name: str, *, num_classes: int, input_shape: tuple[int, ...] | None = None, size: str = "small",
               **options) -> nn.Module:
    """Build a model by name: ``cnn`` (``size`` one of CNN_SIZES), ``name_ngram`` or ``name_rnn``."""
    if name == "cnn":
        if size not in CNN_SIZES:
            raise ValueError(f"size={size!r} is not a CNN size; choose one of {tuple(CNN_SIZES)}")
        if input_shape is None:
            raise ValueError("model 'cnn' needs input_shape=(channels, height, width)")
        widths, depth, _ = CNN_SIZES[size]
        return FastCNN(input_shape[0], num_classes, widths, depth, image_size=tuple(input_shape[1:]),
                       **cnn_options(size, options))
    if name in NAME_MODELS:
        return NAME_MODELS[name](num_classes, **options)
    raise ValueError(f"model={name!r} is not known; choose one of {MODELS}")


def multiply_adds(model: nn.Module, *inputs: torch.Tensor) -> int:
    """Multiply-adds of one forward pass through ``model``'s convolutions and linear layers (counted with hooks;
    normalisation, pooling and activations are left out, as is usual for a network's compute)."""
    total = 0

    def conv_hook(module, args, output):
        nonlocal total
        total += output.numel() * (module.in_channels // module.groups) * int(torch.tensor(module.kernel_size).prod())

    def linear_hook(module, args, output):
        nonlocal total
        total += output.numel() * module.in_features

    def whitening_hook(module, args, output):  # the CNN's frozen first convolution (not an nn.Conv2d)
        nonlocal total
        total += output.numel() * module.weight[0].numel()

    hooks = {nn.Conv1d: conv_hook, nn.Conv2d: conv_hook, nn.Linear: linear_hook, PatchWhitening: whitening_hook}
    handles = [module.register_forward_hook(hook) for module in model.modules()
               for kind, hook in hooks.items() if isinstance(module, kind)]
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(*inputs)
    finally:
        model.train(was_training)
        for handle in handles:
            handle.remove()
    return total


def cnn_multiply_adds(size: str, input_shape: tuple[int, int, int], num_classes: int = 10) -> int:
    """Multiply-adds per image of the CNN of ``size`` on images of ``input_shape`` (channels, height, width)."""
    network = make_model("cnn", num_classes=num_classes, input_shape=tuple(input_shape), size=size)
    return multiply_adds(network, torch.zeros(1, *input_shape))
