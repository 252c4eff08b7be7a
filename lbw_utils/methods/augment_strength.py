"""Class-conditional augmentation strength from the baseline's validation false positives (method
``augment-strength``).

Augmentation's effect depends on the class (Balestriero, Bottou & LeCun, NeurIPS 2022); Kirichenko et al.
("Understanding the detrimental class-level effects of data augmentation", NeurIPS 2023, arXiv 2401.01764) trace
the classes it hurts to the false positives it adds between related classes and recover them with a
class-conditional augmentation. A deliberate variant, with one rule for every class: each class c's examples
get the extra augmentation ``policy`` (on top of the study's own) with probability

    ``p_c = clip(s * (FP_c + 1) ** exponent, 0, 1)``,

where ``FP_c`` counts the same seed's baseline's validation predictions of class c that were wrong (the column of
its validation confusion matrix, off the diagonal) and ``s`` is set so that the mean of ``p`` is ``mean``: the
average strength, hence the cost in augmented examples, is the same whatever the exponent. ``exponent = 0`` is
uniform augmentation at that strength (the reference row); its sign (more augmentation for the classes others are
mistaken for, or less) and size are chosen on tuning seeds, never assumed.
"""

from __future__ import annotations

from typing import Any

import torch

from lbw_utils.methods.common import _is_number
from lbw_utils.methods.spec import MethodSpec, Parameter, choice, fraction, shown_value
from lbw_utils.methods.static import CrossEntropy
from lbw_utils.train import AUGMENTATIONS


def false_positives(confusion: Any) -> torch.Tensor:
    """Per class, the examples of other classes predicted as it (rows of ``confusion``: the true class)."""
    matrix = torch.as_tensor(confusion, dtype=torch.float64)
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1]:
        raise ValueError(f"confusion must be a square [C, C] matrix, got shape {tuple(matrix.shape)}")
    return matrix.sum(0) - matrix.diagonal()


def class_strengths(confusion: Any, mean: float, exponent: float) -> torch.Tensor:
    """``p_c = clip(s * (FP_c + 1) ** exponent, 0, 1)`` with ``s`` found by bisection so that ``mean(p) = mean``."""
    if not (_is_number(mean) and 0 < mean <= 1):
        raise ValueError(f"mean={mean!r} is not allowed: expected an average strength in (0, 1]")
    if not _is_number(exponent):
        raise ValueError(f"exponent={exponent!r} is not allowed: expected a finite number")
    shape = (false_positives(confusion) + 1) ** exponent
    shape = shape / shape.max()
    low, high = 0.0, float(1 / shape.min())  # at high every class is at 1
    for _ in range(100):
        middle = (low + high) / 2
        if (middle * shape).clamp(0, 1).mean() < mean:
            low = middle
        else:
            high = middle
    return (high * shape).clamp(0, 1).float()


class StrengthCrossEntropy(CrossEntropy):
    """Plain cross-entropy that tells the training loop each class's probability of the extra augmentation."""

    def __init__(self, strengths: Any, label_smoothing: float = 0.0, policy: str = "dataset") -> None:
        super().__init__(label_smoothing)
        strengths = torch.as_tensor(strengths, dtype=torch.float32).flatten()
        if not ((strengths >= 0) & (strengths <= 1)).all():
            raise ValueError(f"augmentation strengths {strengths.tolist()} must lie in [0, 1]")
        self.register_buffer("augment_classes", strengths)
        self.targeted_augmentation = policy

    def record(self) -> dict:
        return {"weights": None, "augmentation_strengths": self.augment_classes.tolist(),
                "augmentation": self.targeted_augmentation}


def _build(options, num_classes, confusion, label_smoothing):
    if confusion is None:  # exponent 0: uniform, nothing read of the baseline
        strengths = torch.full((num_classes,), float(options["mean"]))
    else:
        strengths = class_strengths(confusion, options["mean"], options["exponent"])
    return StrengthCrossEntropy(strengths, label_smoothing, options["policy"])


def _display(options: dict) -> str:
    if options["exponent"] == 0:
        return f"uniform augmentation strength, mean {shown_value(options['mean'])}"
    return (f"class-conditional augmentation strength, mean {shown_value(options['mean'])}, "
            f"exponent {shown_value(options['exponent'])}")


SPECS = [
    MethodSpec("augment-strength", "train",
               {"mean": fraction(0.5, open_low=True),
                "exponent": Parameter(1.0, _is_number, "a finite number (0: uniform strength)"),
                "policy": choice("dataset", AUGMENTATIONS)},
               build=_build, needs_baseline_tpr=lambda o: o["exponent"] != 0, reads="confusion",
               label_short={"exponent": "exp"},
               summary="the augmentation policy for each class with a probability set from the baseline's "
                       "validation false positives ((FP + 1) ** exponent), mean strength fixed; exponent 0: uniform",
               display=_display),
]
