"""The networks: the fast small CNN for images (:mod:`lbw_utils.models.cnn`) and the name -> nationality
models (:mod:`lbw_utils.models.recurrent`), built by name with :func:`make_model`."""

from __future__ import annotations

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
