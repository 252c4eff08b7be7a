"""Per-class metrics from labels and predictions, all derived from one confusion matrix.

Conventions: rows of the confusion matrix are true classes, columns predicted
classes. A class with no true samples has an undefined TPR (NaN); a class that
is never predicted has an undefined precision (NaN). Summary statistics over
classes (TPR std, worst class, ...) ignore NaN entries, like scikit-learn's
``zero_division=np.nan``.
"""

from __future__ import annotations

import math

import numpy as np
import scipy.sparse
import scipy.sparse.csgraph
import torch


def _as_labels(values, name: str) -> torch.Tensor:
    tensor = torch.as_tensor(values)
    if tensor.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {tuple(tensor.shape)}")
    if tensor.is_floating_point() and tensor.numel():  # an empty list [] arrives as float32
        raise ValueError(f"{name} must hold integer class indices, got dtype {tensor.dtype}")
    return tensor.long().cpu()


def confusion_matrix(y_true, y_pred, num_classes: int) -> torch.Tensor:
    """Integer tensor ``[C, C]``: entry ``[i, j]`` counts samples of class i predicted as j."""
    true, pred = _as_labels(y_true, "y_true"), _as_labels(y_pred, "y_pred")
    if len(true) != len(pred):
        raise ValueError(f"y_true has {len(true)} labels but y_pred has {len(pred)}")
    if num_classes < 1:
        raise ValueError(f"num_classes={num_classes} must be positive")
    for name, labels in (("y_true", true), ("y_pred", pred)):
        if len(labels) and (labels.min() < 0 or labels.max() >= num_classes):
            raise ValueError(f"{name} holds labels outside [0, {num_classes - 1}]")
    flat = torch.bincount(true * num_classes + pred, minlength=num_classes * num_classes)
    return flat.view(num_classes, num_classes)


def _ratio(numerator: torch.Tensor, denominator: torch.Tensor) -> torch.Tensor:
    numerator, denominator = numerator.double(), denominator.double()
    return torch.where(denominator > 0, numerator / denominator.clamp_min(1), torch.full_like(numerator, math.nan))


def tpr_from_confusion(matrix: torch.Tensor) -> torch.Tensor:
    return _ratio(matrix.diagonal(), matrix.sum(1))


def per_class_tpr(y_true, y_pred, num_classes: int) -> torch.Tensor:
    """Recall of each class, float64 ``[C]``; NaN for a class with no samples."""
    return tpr_from_confusion(confusion_matrix(y_true, y_pred, num_classes))


def tpr_variance_reduction(baseline_tpr, weighted_tpr) -> float:
    """The paper's effect measure ``D = Var(s) - Var(s')``; positive means the TPRs grew more even."""
    # float64 from the start: a Python list would otherwise become float32 and D lose ~7 digits.
    baseline = torch.as_tensor(baseline_tpr, dtype=torch.float64)
    return _nan_variance(baseline) - _nan_variance(torch.as_tensor(weighted_tpr, dtype=torch.float64))


def _nan_variance(values: torch.Tensor) -> float:
    # Population variance (ddof = 0): the classes are the whole population, not a sample.
    values = values.double()
    values = values[~torch.isnan(values)]
    return float(values.var(unbiased=False)) if len(values) else math.nan


def summarize(y_true, y_pred, num_classes: int, class_names: list[str] | None = None) -> dict:
    """Every metric a run record holds, as plain Python numbers and lists."""
    matrix = confusion_matrix(y_true, y_pred, num_classes)
    tpr = tpr_from_confusion(matrix)
    precision = _ratio(matrix.diagonal(), matrix.sum(0))
    f1 = _ratio(2 * matrix.diagonal(), matrix.sum(0) + matrix.sum(1))  # 2TP / (2TP + FP + FN); NaN: never seen
    present = tpr[~torch.isnan(tpr)]
    total = int(matrix.sum())
    worst = int(torch.nan_to_num(tpr, nan=math.inf).argmin()) if len(present) else -1
    best = int(torch.nan_to_num(tpr, nan=-math.inf).argmax()) if len(present) else -1
    names = class_names or [str(index) for index in range(num_classes)]
    return {
        "accuracy": int(matrix.diagonal().sum()) / total if total else math.nan,  # exact, not float32
        "balanced_accuracy": float(present.mean()) if len(present) else math.nan,
        "macro_f1": float(torch.nanmean(f1)) if not torch.isnan(f1).all() else math.nan,
        "tpr": tpr.tolist(),
        "precision": precision.tolist(),
        "f1": f1.tolist(),
        "tpr_std": math.sqrt(_nan_variance(tpr)) if len(present) else math.nan,
        "tpr_variance": _nan_variance(tpr),
        "worst_class_tpr": float(present.min()) if len(present) else math.nan,
        "worst_class": names[worst] if worst >= 0 else None,
        "best_minus_worst_tpr": float(present.max() - present.min()) if len(present) else math.nan,
        "best_class": names[best] if best >= 0 else None,
        "confusion_matrix": matrix.tolist(),
        "num_samples": total,
    }


def most_confused_pairs(matrix, class_names: list[str], top: int = 5) -> list[tuple[str, str, int, float]]:
    """The largest off-diagonal entries: (true class, predicted as, count, share of the true class)."""
    # A copy: torch warns about read-only numpy arrays (e.g. from pandas).
    matrix = matrix.clone() if isinstance(matrix, torch.Tensor) else torch.as_tensor(np.array(matrix))
    off_diagonal = matrix.clone()
    off_diagonal.fill_diagonal_(0)
    row_totals = matrix.sum(1).clamp_min(1)
    order = off_diagonal.flatten().argsort(descending=True)[:top]
    pairs = []
    for flat_index in order.tolist():
        true, pred = divmod(flat_index, matrix.shape[1])
        count = int(off_diagonal[true, pred])
        if count:
            pairs.append((class_names[true], class_names[pred], count, count / int(row_totals[true])))
    return pairs


def confusion_groups(matrix, class_names: list[str], min_share: float = 0.1) -> list[list[str]]:
    """Classes a model mixes up, as groups: two classes are linked when, on average over the two
    directions, at least ``min_share`` of a class's samples go to the other; a group is a connected set
    of linked classes (two or more), largest first. E.g. british, american and australian."""
    if not 0 < min_share < 1:
        raise ValueError(f"min_share={min_share!r} is not allowed: expected a number in (0, 1)")
    matrix = np.asarray(matrix, dtype=float)
    shares = matrix / np.clip(matrix.sum(1, keepdims=True), 1, None)
    linked = (shares + shares.T) / 2 >= min_share
    _, group_of = scipy.sparse.csgraph.connected_components(scipy.sparse.csr_array(linked), directed=False)
    members: dict[int, list[str]] = {}
    for index, name in enumerate(class_names):
        members.setdefault(int(group_of[index]), []).append(name)
    return sorted((group for group in members.values() if len(group) > 1), key=lambda group: (-len(group), group))
