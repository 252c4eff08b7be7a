"""The fast small CNN for 1x28x28 and 3x32x32 images.

The CNN follows airbench's shape (conv -> pool -> BN -> activation per block, one
linear layer, a frozen patch-whitening first convolution) with ReLU where
airbench has GELU: cheap per image, trains in few epochs with a triangular
learning rate, and runs in channels_last.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from lbw_utils.speed import SmallMapConv

# (block widths, convolutions per block, first convolution). Every block but the last halves the
# resolution after its first convolution, so the costly convolutions run at 14x14 and below: "small" costs
# ~2.6 M multiply-adds per 28x28 image (about 4 s per Fashion-MNIST epoch on two CPU cores with bf16:
# 8.0 s for the 2-epoch schedule, README speed section). The first convolution is a frozen whitening
# ("whiten", see PatchWhitening) where its width allows, which takes the largest max pool and convolution
# out of the backward pass. A grey 3x3 patch can give 18 whitening filters (2 x 9), a colour one 54:
# "medium" (24) and "large" (64, meant for CIFAR-10 on a GPU) are wider, so they learn their own first
# convolution on either kind of image.
CNN_SIZES = {
    "tiny": ((8, 16, 32, 64), 1, "whiten"),
    "small": ((16, 32, 64, 128), 1, "whiten"),
    "medium": ((24, 48, 96, 192), 1, "conv"),
    # Three blocks of 32-64-128 channels with a learned first convolution: the widths of the plain script a
    # reader writes first (about 3x the small CNN's multiply-adds per image), for the baseline search.
    "wide": ((32, 64, 128), 1, "conv"),
    "large": ((64, 128, 256, 512), 2, "conv"),
}
STEMS = ("whiten", "conv")
# How many training images the whitening statistics come from (airbench takes 5000 too).
WHITENING_IMAGES = 5000


def _bn_relu(channels: int) -> list[nn.Module]:
    # ReLU, not airbench's GELU: on the CPU, GELU's forward and backward cost about a fifth of a step of
    # the whitened CNN, and with the whitening stem ReLU is as accurate (Fashion-MNIST, 2 epochs, seeds
    # 0-2: validation accuracy 0.922 against 0.919; README, speed section).
    return [nn.BatchNorm2d(channels), nn.ReLU(inplace=True)]  # in place: BatchNorm's backward keeps its input


def _conv(in_channels: int, out_channels: int) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False)


class PatchWhitening(nn.Module):
    """A frozen 3x3 convolution whose filters whiten the training images' patches.

    After ``fit(images)`` the filters are the leading eigenvectors ``v`` of the (uncentred) covariance of
    all 3x3 patches, scaled by ``1 / sqrt(eigenvalue + eps)``, each as ``+v`` and ``-v``; so the layer's
    outputs are decorrelated, unit-variance patch components. It follows ``CifarNet.init_whiten`` of
    airbench94.py (KellerJordan/airbench; read in forks that keep the function unchanged, as the
    repository itself could not be fetched here). Deliberate differences: 3x3 filters with padding 1 and
    no bias (a max pool and BatchNorm follow), and only the ``out_channels / 2`` leading components when
    that is fewer than the patch has (16 filters from the 9 of a grey 3x3 patch keep 8).

    The filters are a buffer, not a parameter: they are saved with the weights, never trained, and nothing
    upstream of them needs a gradient. Before ``fit`` they hold a random convolution's initialisation.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, eps: float = 5e-4):
        super().__init__()
        components = in_channels * kernel_size * kernel_size
        if out_channels % 2 or out_channels > 2 * components:
            raise ValueError(f"a whitening of {in_channels}x{kernel_size}x{kernel_size} patches has an even number "
                             f"of filters, at most {2 * components}; got out_channels={out_channels}")
        self.kernel_size, self.eps = kernel_size, eps
        weight = torch.empty(out_channels, in_channels, kernel_size, kernel_size)
        nn.init.kaiming_uniform_(weight, a=math.sqrt(5))  # nn.Conv2d's initialisation
        self.register_buffer("weight", weight)

    @torch.no_grad()
    def fit(self, images: torch.Tensor, chunk: int = 500) -> None:
        """Set the filters from ``images`` ([N, C, H, W], normalised as the network will see them)."""
        components = self.weight[0].numel()
        covariance = torch.zeros(components, components, dtype=torch.float64, device=images.device)
        count = 0
        for part in images.split(chunk):  # a few MB of patches at a time
            patches = F.unfold(part.float(), self.kernel_size).transpose(1, 2).reshape(-1, components).double()
            covariance += patches.T @ patches
            count += len(patches)
        eigenvalues, eigenvectors = torch.linalg.eigh(covariance / count)  # ascending
        kept = len(self.weight) // 2
        leading = eigenvectors[:, -kept:].flip(1) / torch.sqrt(eigenvalues[-kept:].flip(0) + self.eps)
        filters = leading.T.reshape(kept, *self.weight.shape[1:])
        self.weight.copy_(torch.cat([filters, -filters]).to(self.weight))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return F.conv2d(images, self.weight.to(images.dtype), padding=self.kernel_size // 2)


class FastCNN(nn.Module):
    """Blocks of conv -> max pool -> BN -> ReLU (-> conv -> BN -> ReLU per extra conv), flattened into a linear.

    Pooling right after each block's first convolution (airbench's order) lets BatchNorm and ReLU, the
    memory-bound part of a CPU step, run on a quarter of the pixels; the last block does not pool, and its
    small map (3x3 for 28x28 inputs) is flattened, which keeps where a feature fired (a global max pool
    throws that away and needed a third epoch to reach 91 % on Fashion-MNIST). With ``stem="whiten"`` the
    first convolution is a frozen PatchWhitening, set from the training images by ``init_from_data``
    (``fit`` calls it): the backward pass then stops at the first BatchNorm, which skips the largest max
    pool and convolution of the step. The last block's convolutions are SmallMapConv (a faster weight
    gradient on the CPU).
    """

    def __init__(self, in_channels: int, num_classes: int, widths=CNN_SIZES["small"][0], convs_per_stage: int = 1,
                 image_size: tuple[int, int] = (28, 28), stem: str = "whiten"):
        super().__init__()
        if stem not in STEMS:
            raise ValueError(f"stem={stem!r} is not known; choose one of {STEMS}")
        layers, previous = [], in_channels
        height, width = image_size
        for index, channels in enumerate(widths):
            last = index == len(widths) - 1
            conv = SmallMapConv if last else _conv  # the last block runs on the smallest map and does not pool
            first = PatchWhitening(previous, channels) if index == 0 and stem == "whiten" else conv(previous, channels)
            layers.append(first)
            if not last:
                layers.append(nn.MaxPool2d(2))
                height, width = height // 2, width // 2
            layers += _bn_relu(channels)
            for _ in range(convs_per_stage - 1):
                layers += [conv(channels, channels), *_bn_relu(channels)]
            previous = channels
        self.features = nn.Sequential(*layers)
        # The head's weight has nn.Flatten's (channel, row, column) order; forward permutes it instead of the map.
        self.head = nn.Linear(previous * height * width, num_classes)

    def init_from_data(self, data) -> None:
        """Fit the whitening stem (if any) to the first WHITENING_IMAGES training images of ``data``."""
        stem = self.features[0]
        if isinstance(stem, PatchWhitening):
            (images,), _ = next(iter(data.batches("train", WHITENING_IMAGES)))
            stem.fit(images.to(stem.weight.device))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        maps = self.features(images)
        # Flatten in (row, column, channel) order: a view of a channels_last map, so neither pass copies it,
        # and the gradient reaches the last block in the layout of its output (a flatten in channel order
        # made its ReLU and BatchNorm backward run on mixed layouts: 6 % of a step). The same function as
        # head(flatten(maps)): the head's weight is permuted to match (10 x 1152 values for "small").
        count, channels, height, width = maps.shape
        weight = self.head.weight.view(-1, channels, height, width).permute(0, 2, 3, 1).flatten(1)
        return F.linear(maps.permute(0, 2, 3, 1).flatten(1), weight, self.head.bias)


def cnn_options(size: str, options: dict) -> dict:
    """The FastCNN options of a CNN size: its stem from CNN_SIZES, unless ``options`` names one."""
    return {"stem": CNN_SIZES[size][2], **options}
