"""What every loss shares: the hooks the training loop calls on it (:class:`LossHooks`, declared beside the
loop in :mod:`lbw_utils.train`), argument checks, constants, small tensor helpers, weight trajectories."""

from __future__ import annotations

import math
from numbers import Real
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from lbw_utils.train import LossHooks  # noqa: F401  (re-exported: every loss's hooks)

STATIC_SCHEMES = ("mean-ratio", "inverse", "cdb", "fnr")

# Floor for the difficulty base ``1 - TPR`` of the static cdb/fnr schemes (and of CDBLoss when asked
# for, ``floor=MIN_BASE``): a class recalled perfectly would otherwise get weight 0 and drop out.
MIN_BASE = 1e-3

# Dynamic losses keep one weight vector per update; a run record keeps at most
# this many of them, evenly spaced (first and last included), so records stay small.
MAX_TRAJECTORY_ROWS = 500

# Denominator guard of the CDB paper's dynamic tau (the official code's epsilon).
CDB_DYNAMIC_TAU_EPSILON = 0.01


def _per_class_recall(logits: torch.Tensor, targets: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Recall of every class on (logits, targets); a class without samples gets the mean of the others.

    Checked once per call (a sync: validation-time only), since out-of-range labels would miscount."""
    _check_batch(logits, targets, num_classes)
    if targets.shape[0] == 0:
        raise ValueError("val_targets is empty: per-class recall needs validation samples")
    low, high = int(targets.min()), int(targets.max())
    if low < 0 or high >= num_classes:
        raise ValueError(f"val_targets must lie in [0, {num_classes - 1}], found values in [{low}, {high}]")
    counts, hits = _class_counts_and_hits(targets, logits.argmax(dim=1) == targets, num_classes)
    present = counts > 0
    recall = hits / counts.clamp_min(1)
    return torch.where(present, recall, (recall * present).sum() / present.sum())


# --------------------------------------------------------------------------
# Argument checks shared by every loss
# --------------------------------------------------------------------------

def _is_number(value: Any) -> bool:
    """A finite real number (bools are not numbers here)."""
    return not isinstance(value, bool) and isinstance(value, Real) and math.isfinite(value)


def _finite_number(name: str, value: Any) -> float:
    """``value`` as a float, or a ValueError naming ``name`` if it is not a finite real number."""
    if not _is_number(value):
        raise ValueError(f"{name}={value!r} is not allowed: expected a finite real number")
    return float(value)


def _one_of(name: str, value: Any, options: tuple) -> Any:
    """``value`` if it is one of ``options``, or a ValueError naming both."""
    if value not in options:
        raise ValueError(f"{name}={value!r} is not allowed: expected one of {options}")
    return value


def _smoothing_factor(name: str, value: Any) -> float:
    """An exponential-smoothing factor: a finite number in (0, 1]."""
    number = _finite_number(name, value)
    if not 0.0 < number <= 1.0:
        raise ValueError(f"{name}={value!r} is not allowed: expected a number in (0, 1]")
    return number


def _non_negative(name: str, value: Any) -> float:
    number = _finite_number(name, value)
    if number < 0:
        raise ValueError(f"{name}={value!r} is not allowed: expected a finite number >= 0")
    return number


def _label_smoothing(value: Any) -> float:
    number = _finite_number("label_smoothing", value)
    if not 0.0 <= number <= 1.0:
        raise ValueError(f"label_smoothing={value!r} is not allowed: expected a number in [0, 1]")
    return number


def _num_classes(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 2:
        raise ValueError(f"num_classes={value!r} is not allowed: expected an integer >= 2")
    return int(value)


def _class_weight_vector(name: str, weights: Any) -> torch.Tensor:
    """Per-class weights as a float32 CPU tensor; they must be 1-D, finite and positive."""
    vector = _as_float64_vector(name, weights)
    bad = torch.nonzero(vector <= 0).flatten().tolist()
    if bad:
        raise ValueError(f"{name} must be finite and > 0 for every class; class index {bad[0]} has "
                         f"{vector[bad[0]].item()!r}")
    return vector.float()


def _as_float64_vector(name: str, values: Any) -> torch.Tensor:
    """A list / numpy array / tensor as a 1-D, non-empty, finite float64 CPU tensor."""
    try:
        if isinstance(values, torch.Tensor):
            vector = values.detach().to("cpu", torch.float64)
        else:
            vector = torch.as_tensor(np.asarray(values, dtype=np.float64))
    except (TypeError, ValueError) as error:
        raise ValueError(f"{name}={values!r} is not allowed: expected a 1-D sequence of numbers") from error
    if vector.dim() != 1 or vector.numel() == 0:
        raise ValueError(f"{name} must be a non-empty 1-D sequence of numbers, got shape {tuple(vector.shape)}")
    not_finite = torch.nonzero(~torch.isfinite(vector)).flatten().tolist()
    if not_finite:
        raise ValueError(f"{name} must be finite; class index {not_finite[0]} has {vector[not_finite[0]].item()!r}")
    return vector


def _check_batch(logits: torch.Tensor, targets: torch.Tensor, num_classes: int | None) -> None:
    """Shape and dtype checks only: they read metadata, so they never wait for the device."""
    if logits.dim() != 2:
        raise ValueError(f"logits must have shape [B, C], got shape {tuple(logits.shape)}")
    if targets.dim() != 1 or targets.shape[0] != logits.shape[0]:
        raise ValueError(f"targets must have shape [B] with B = logits.shape[0] = {logits.shape[0]}, "
                         f"got shape {tuple(targets.shape)}")
    if targets.dtype != torch.long:
        raise ValueError(f"targets must be int64 class indices, got dtype {targets.dtype}")
    if num_classes is not None and logits.shape[1] != num_classes:
        raise ValueError(f"logits have {logits.shape[1]} classes (logits.shape[1]) but this loss was built "
                         f"for {num_classes} classes")


# --------------------------------------------------------------------------
# Small tensor helpers
# --------------------------------------------------------------------------

def _difficulty_base(accuracy: torch.Tensor) -> torch.Tensor:
    """``max(1 - accuracy, MIN_BASE)``: a class's error rate, floored so it never weighs 0."""
    return (1.0 - accuracy).clamp_min(MIN_BASE)


def _class_counts_and_hits(targets: torch.Tensor, correct: torch.Tensor,
                           num_classes: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Per class: how many samples the batch holds, and how many of them were predicted right.

    Column sums of a one-hot matrix rather than ``torch.bincount``: on CUDA,
    bincount reads the largest label back to the host to size its output (a
    sync), and its weighted form is nondeterministic.
    """
    one_hot = F.one_hot(targets, num_classes)
    return one_hot.sum(dim=0), (one_hot * correct[:, None]).sum(dim=0)


class _Trajectory:
    """Per-class weight vectors over time, kept on the device until a record is written."""

    def __init__(self, max_rows: int = MAX_TRAJECTORY_ROWS) -> None:
        self.max_rows = max_rows
        self.steps: list[int] = []
        self.rows: list[torch.Tensor] = []

    def append(self, step: int, vector: torch.Tensor) -> None:
        self.steps.append(int(step))
        self.rows.append(vector.detach().clone())  # a clone, not a sync: stays on the device

    def __len__(self) -> int:
        return len(self.rows)

    def as_lists(self, transform=None) -> tuple[list[int], list[list[float]]]:
        """(steps, rows), subsampled evenly to at most ``max_rows`` (first and last kept)."""
        if not self.rows:
            return [], []
        keep = range(len(self.rows))
        if len(self.rows) > self.max_rows:
            keep = np.unique(np.linspace(0, len(self.rows) - 1, self.max_rows).round().astype(int))
        rows = torch.stack([self.rows[i] for i in keep]).float()
        if transform is not None:
            rows = transform(rows)
        return [self.steps[i] for i in keep], rows.cpu().tolist()


def _as_list(vector: torch.Tensor) -> list[float]:
    return vector.detach().float().cpu().tolist()
