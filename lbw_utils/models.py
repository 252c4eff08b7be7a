"""Models: a fast small CNN for 1x28x28 and 3x32x32 images, and the names models (see name_model).

The CNN follows airbench's shape (conv -> pool -> BN -> GELU -> conv -> BN ->
GELU per stage, global max pool, one linear layer): cheap per image, trains in
few epochs with a triangular learning rate, and runs in channels_last.
"""

from __future__ import annotations

import torch
from torch import nn

from lbw_utils.name_model import NAME_MODELS

# (stem width, stage widths..., convolutions per stage). Each stage first halves
# the resolution, so the costly convolutions run at 14x14 and below: "small"
# costs ~2.6 M multiply-adds per 28x28 image (about 6 s per Fashion-MNIST epoch
# on two CPU cores with bf16); "large" is meant for CIFAR-10 on a GPU.
CNN_SIZES = {
    "tiny": ((8, 16, 32, 64), 1),
    "small": ((16, 32, 64, 128), 1),
    "medium": ((24, 48, 96, 192), 1),
    "large": ((64, 128, 256, 512), 2),
}
MODELS = ("cnn", *NAME_MODELS)


def conv_bn_gelu(in_channels: int, out_channels: int) -> list[nn.Module]:
    return [nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False), nn.BatchNorm2d(out_channels), nn.GELU()]


class FastCNN(nn.Module):
    """Stem conv, then stages of (max pool, conv-BN-GELU x depth), global max pool, linear."""

    def __init__(self, in_channels: int, num_classes: int, widths=CNN_SIZES["small"][0], convs_per_stage: int = 1):
        super().__init__()
        stem, *stages = widths
        layers = conv_bn_gelu(in_channels, stem)
        previous = stem
        for width in stages:
            layers.append(nn.MaxPool2d(2))
            layers += conv_bn_gelu(previous, width)
            layers += [module for _ in range(convs_per_stage - 1) for module in conv_bn_gelu(width, width)]
            previous = width
        layers += [nn.AdaptiveMaxPool2d(1), nn.Flatten()]
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(previous, num_classes)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(images))


def make_model(name: str, *, num_classes: int, input_shape: tuple[int, ...] | None = None, size: str = "small",
               **options) -> nn.Module:
    """Build a model by name: ``cnn`` (``size`` one of CNN_SIZES), ``name_ngram`` or ``name_rnn``."""
    if name == "cnn":
        if size not in CNN_SIZES:
            raise ValueError(f"size={size!r} is not a CNN size; choose one of {tuple(CNN_SIZES)}")
        if input_shape is None:
            raise ValueError("model 'cnn' needs input_shape=(channels, height, width)")
        widths, depth = CNN_SIZES[size]
        return FastCNN(input_shape[0], num_classes, widths, depth, **options)
    if name in NAME_MODELS:
        return NAME_MODELS[name](num_classes, **options)
    raise ValueError(f"model={name!r} is not known; choose one of {MODELS}")
