"""Methods meant to change what the network separates, not only where it puts its thresholds.

Every weighting of notebooks 03-04 reaches about the same ceiling of re-deciding as the baseline
(:mod:`lbw_utils.ceiling`): they move decision thresholds. The methods here act elsewhere, and notebook
``09_beyond_reweighting`` asks of each whether its ceiling rises above the baseline's:

* **class-targeted augmentation** (``augment``, ``classes="confused"``): an augmentation policy (``policy``, the
  dataset's flip + crop by default) on top of the study's own augmentation, only for the classes of
  the *confused group*, the ``group`` classes with the lowest validation TPR of the same seed's baseline;
  ``classes="all"`` is uniform augmentation at the same cost (every batch is augmented either way; the
  targeted form leaves the other classes with the study's own augmentation). The loss is plain cross-entropy;
  the training loop reads the loss's ``augment_classes`` (a boolean per class) and augments those examples.
* **pairwise confusion margins** (``pair-margin``): a deliberate variant of logit adjustment (Menon et al.,
  ICLR 2021; the static ``margin`` method applies it per class) with one margin per *pair* of classes.
  From the baseline's validation confusion matrix, ``r[y, k]`` is the share of class y predicted as k and
  ``s[y, k] = (r[y, k] + r[k, y]) / 2`` the pair's symmetric confusion; an example of class y is trained on
  ``CE(z + gamma * s[y] / max s, y)``: each rival k's logit is raised by the pair's margin, so the network
  must separate the pair by that much in *both* directions. A per-class shift cannot satisfy two opposite
  margins at once, which is what sets it apart from a threshold move.
* **weight averaging** (``average``): an exponential moving average of the weights, evaluated instead of the
  last weights, with TensorFlow's ``ExponentialMovingAverage`` warm-up ``min(decay, (1 + t) / (10 + t))``
  so that early weights fade (``lbw_utils.train.WeightAverage``); the loop does the averaging.
* **capacity** (``capacity``): the same loss and schedule with a larger CNN (``size``); its compute is larger,
  and the notebook says by how much.

None of them is a loss weighting, so none comes from the question, the draft paper or the blog post; each
row names its compute (epochs x images, seconds) beside the baseline's. Their methods: ``augment``,
``pair-margin``, ``average``, ``capacity``.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from lbw_utils.methods.common import _check_batch, _is_number, _label_smoothing, _num_classes
from lbw_utils.methods.spec import MethodSpec, Parameter, choice, fraction, non_negative, positive_int, shown_value
from lbw_utils.methods.static import CrossEntropy
from lbw_utils.models import CNN_SIZES
from lbw_utils.train import AUGMENTATIONS

AUGMENT_CLASSES = ("confused", "all")


def confused_group(tpr: Any, size: int) -> list[int]:
    """The ``size`` classes with the lowest TPR (the baseline's, on validation), lowest first; ties by index."""
    values = torch.as_tensor(tpr, dtype=torch.float64).flatten()
    if not 1 <= size <= len(values):
        raise ValueError(f"group={size!r} must be between 1 and the number of classes ({len(values)})")
    if torch.isnan(values).any():
        raise ValueError(f"the baseline's validation TPRs {values.tolist()} contain NaN (a class without "
                         "validation examples): the confused group needs every class's TPR")
    order = sorted(range(len(values)), key=lambda index: (float(values[index]), index))
    return order[:size]


class AugmentedCrossEntropy(CrossEntropy):
    """Plain cross-entropy that tells the training loop which classes' examples to augment
    (``augment_classes``: a boolean per class; all True is uniform augmentation)."""

    def __init__(self, augment_classes: Any, label_smoothing: float = 0.0, policy: str = "dataset") -> None:
        super().__init__(label_smoothing)
        mask = torch.as_tensor(augment_classes, dtype=torch.bool).flatten()
        if not mask.any():
            raise ValueError("augment_classes selects no class; give at least one")
        self.register_buffer("augment_classes", mask)
        self.targeted_augmentation = policy  # what the chosen classes get; the others keep the study's augmentation

    def record(self) -> dict:
        return {"weights": None, "augmented_classes": [int(i) for i in torch.nonzero(self.augment_classes).flatten()],
                "augmentation": self.targeted_augmentation}


def augment_mask(tpr: Any, num_classes: int, classes: str, group: int) -> list[bool]:
    """Which classes an ``augment`` run augments: every class, or the confused group of ``tpr``."""
    if classes == "all":
        return [True] * num_classes
    chosen = set(confused_group(tpr, group))
    return [index in chosen for index in range(num_classes)]


def pair_margins(confusion: Any, gamma: float) -> torch.Tensor:
    """``gamma * s / max s`` with ``s[y, k] = (r[y, k] + r[k, y]) / 2`` off the diagonal (0 on it), where
    ``r[y, k]`` is the share of class y's validation examples predicted as k. All zeros when nothing is
    confused."""
    matrix = torch.as_tensor(confusion, dtype=torch.float64)
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1]:
        raise ValueError(f"confusion must be a square [C, C] matrix, got shape {tuple(matrix.shape)}")
    counts = matrix.sum(1, keepdim=True)
    if (counts == 0).any():
        raise ValueError("a class has no validation examples in the baseline's confusion matrix; "
                         "pairwise margins need every class")
    rates = matrix / counts
    symmetric = (rates + rates.T) / 2
    symmetric.fill_diagonal_(0)
    top = symmetric.max()
    return (gamma * symmetric / top if top > 0 else symmetric).float()


class PairMarginLoss(nn.Module):
    """``CE(z + M[y], y)``: each rival logit raised by its pair's margin ``M[y, k]`` (:func:`pair_margins`);
    ``M[y, y] = 0``. At test time the plain logits decide."""

    def __init__(self, margins: Any, label_smoothing: float = 0.0) -> None:
        super().__init__()
        margins = torch.as_tensor(margins, dtype=torch.float32)
        if margins.ndim != 2 or margins.shape[0] != margins.shape[1] or not torch.isfinite(margins).all():
            raise ValueError(f"margins must be a finite square [C, C] matrix, got shape {tuple(margins.shape)}")
        _num_classes(margins.shape[0])
        self.register_buffer("margins", margins)
        self.label_smoothing = _label_smoothing(label_smoothing)

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        _check_batch(logits, targets, self.margins.shape[0])
        return F.cross_entropy(logits.float() + self.margins[targets], targets, label_smoothing=self.label_smoothing)

    def record(self) -> dict:
        return {"weights": None, "pair_margins": self.margins.tolist()}


# --------------------------------------------------------------------------
# The entries. Defaults: the confused group of 4 (Fashion-MNIST's upper-body garments: T-shirt/top, pullover,
# coat, shirt, read from validation, not assumed); the other values are chosen on tuning seeds (frontier profile).
# --------------------------------------------------------------------------

def _augment(options, num_classes, tpr, label_smoothing):
    return AugmentedCrossEntropy(augment_mask(tpr, num_classes, options["classes"], options["group"]), label_smoothing,
                                 options["policy"])


def _cnn_size(value: Any) -> bool:
    return isinstance(value, str) and value in CNN_SIZES


SPECS = [
    MethodSpec("augment", "train", {"classes": choice("confused", AUGMENT_CLASSES), "group": positive_int(4),
                                    "policy": choice("dataset", AUGMENTATIONS)},
               build=_augment, needs_baseline_tpr=lambda o: o["classes"] == "confused", label_leading=("classes",),
               summary="an augmentation policy (the dataset's flip + crop by default) for the confused group's "
                       "classes only, or for all (the same cost); the other classes keep the study's augmentation",
               display=lambda o: ("extra augmentation, every class" if o["classes"] == "all"
                                  else f"extra augmentation, the {o['group']} worst classes")
                       + ("" if o["policy"] == "dataset" else f" ({o['policy']})")),
    MethodSpec("pair-margin", "train", {"gamma": non_negative(1.0)},
               build=lambda o, k, confusion, ls: PairMarginLoss(pair_margins(confusion, o["gamma"]), ls),
               needs_baseline_tpr=True, reads="confusion",
               summary="pairwise margins from the baseline's validation confusion: confused pairs kept apart",
               display="pairwise confusion margins, γ = {gamma}"),
    MethodSpec("average", "train", {"decay": Parameter(0.99, lambda v: _is_number(v) and 0 < v < 1,
                                                       "a number in (0, 1)")},
               build=lambda o, k, t, ls: CrossEntropy(ls), train_changes=lambda o, train: {"average_weights": o["decay"]},
               summary="exponential moving average of the weights, evaluated instead of the last weights",
               display="weight averaging, decay {decay}"),
    MethodSpec("capacity", "train",
               {"size": Parameter("medium", _cnn_size, "a CNN size (tiny, small, medium, large)"),
                "epoch_share": fraction(1.0, open_low=True)},
               build=lambda o, k, t, ls: CrossEntropy(ls), model_changes=lambda o, model: {"size": o["size"]},
               train_changes=lambda o, train: {"epochs": max(1, round(o["epoch_share"] * train.epochs))},
               label_leading=("size",), label_short={"epoch_share": "share"},
               summary="plain cross-entropy with a larger CNN, for a share of the study's epochs (its compute said)",
               display=lambda o: f"{o['size']} CNN" + ("" if o["epoch_share"] == 1
                                                        else f", {shown_value(o['epoch_share'])} of the epochs")),
]
