"""Models: a fast small CNN for 1x28x28 and 3x32x32 images, and the names models (see name_model).

The CNN follows airbench's shape (conv -> pool -> BN -> GELU -> conv -> BN ->
GELU per block, one linear layer): cheap per image, trains in few epochs with a
triangular learning rate, and runs in channels_last.
"""

from __future__ import annotations

import torch
from torch import nn

from lbw_utils.name_model import NAME_MODELS

# (block widths, convolutions per block). Every block but the last halves the
# resolution after its first convolution, so the costly convolutions run at 14x14
# and below: "small" costs ~2.6 M multiply-adds per 28x28 image (about 5 s per
# Fashion-MNIST epoch on two CPU cores with bf16); "large" is meant for CIFAR-10
# on a GPU.
CNN_SIZES = {
    "tiny": ((8, 16, 32, 64), 1),
    "small": ((16, 32, 64, 128), 1),
    "medium": ((24, 48, 96, 192), 1),
    "large": ((64, 128, 256, 512), 2),
}
MODELS = ("cnn", *NAME_MODELS)


def _bn_gelu(channels: int) -> list[nn.Module]:
    return [nn.BatchNorm2d(channels), nn.GELU()]


def _conv(in_channels: int, out_channels: int) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False)


class FastCNN(nn.Module):
    """Blocks of conv -> max pool -> BN -> GELU (-> conv -> BN -> GELU per extra conv), flattened into a linear.

    Pooling right after each block's first convolution (airbench's order) lets BatchNorm and GELU, the
    memory-bound part of a CPU step, run on a quarter of the pixels; the last block does not pool, and its
    small map (3x3 for 28x28 inputs) is flattened, which keeps where a feature fired (a global max pool
    throws that away and needed a third epoch to reach 91 % on Fashion-MNIST).
    """

    def __init__(self, in_channels: int, num_classes: int, widths=CNN_SIZES["small"][0], convs_per_stage: int = 1,
                 image_size: tuple[int, int] = (28, 28)):
        super().__init__()
        layers, previous = [], in_channels
        height, width = image_size
        for index, channels in enumerate(widths):
            layers.append(_conv(previous, channels))
            if index < len(widths) - 1:
                layers.append(nn.MaxPool2d(2))
                height, width = height // 2, width // 2
            layers += _bn_gelu(channels)
            for _ in range(convs_per_stage - 1):
                layers += [_conv(channels, channels), *_bn_gelu(channels)]
            previous = channels
        layers.append(nn.Flatten())
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(previous * height * width, num_classes)

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
        return FastCNN(input_shape[0], num_classes, widths, depth, image_size=tuple(input_shape[1:]), **options)
    if name in NAME_MODELS:
        return NAME_MODELS[name](num_classes, **options)
    raise ValueError(f"model={name!r} is not known; choose one of {MODELS}")
