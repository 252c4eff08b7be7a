"""Difficulty margins: logit adjustment with per-class costs from measured difficulty.

Costs ``w_c = (mean r / r_c) ** gamma`` from per-class recall ``r`` (the seed formula's weights,
since ``1 - (r_c - mean r) / r_c = mean r / r_c``) enter the loss additively, as in logit adjustment
(Menon et al., ICLR 2021): ``CE(f(x) - log w, y)`` in training, plain ``f(x)`` at test time, so a hard
class's scores are pushed up by ``log w_c``. Unlike weights, such shifts keep acting once a network fits
its training set (Byrd & Lipton, ICML 2019; Cao et al., LDAM, NeurIPS 2019).

``LogitAdjustedLoss`` takes fixed costs (``margin`` with ``source="static"``: from the baseline's
validation TPRs); ``DynamicMarginLoss`` follows an exponential moving average of each class's recall
in the training batches (``source="dynamic"``, seed 003's smoothing applied to margins).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from lbw_utils.losses.common import (
    MIN_BASE,
    _as_list,
    _check_batch,
    _class_counts_and_hits,
    _class_weight_vector,
    _finite_number,
    _label_smoothing,
    _non_negative,
    _num_classes,
    _Trajectory,
)

MARGIN_SOURCES = ("static", "dynamic")


class LogitAdjustedLoss(nn.Module):
    """``CE(f(x) - log w, y)`` with fixed per-class costs ``w`` (finite, > 0; e.g. from
    :func:`lbw_utils.losses.static_weights` with the seed formula)."""

    def __init__(self, costs: Any, label_smoothing: float = 0.0) -> None:
        super().__init__()
        self.register_buffer("costs", _class_weight_vector("costs", costs))
        self.label_smoothing = _label_smoothing(label_smoothing)

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        _check_batch(logits, targets, self.costs.numel())
        return F.cross_entropy(logits.float() - self.costs.log(), targets, label_smoothing=self.label_smoothing)

    def record(self) -> dict:
        return {"weights": _as_list(self.costs), "margins": _as_list(self.costs.log())}


class DynamicMarginLoss(nn.Module):
    """Logit adjustment with costs from a running estimate of each class's recall.

    ``recall`` starts at ones; on every call in training mode, before the loss, each class c present
    in the batch gets ``recall_c <- alpha * batch_recall_c + (1 - alpha) * recall_c`` (absent classes
    keep theirs). Costs ``w = (mean recall / max(recall, MIN_BASE)) ** gamma``; the loss is
    ``CE(f(x) - log w, y)``. ``record()`` holds the costs, the recall and a trajectory of the costs.
    """

    def __init__(self, num_classes: int, gamma: float = 4.0, alpha: float = 0.01,
                 label_smoothing: float = 0.0) -> None:
        super().__init__()
        self.num_classes = _num_classes(num_classes)
        self.gamma = _non_negative("gamma", gamma)
        self.alpha = _finite_number("alpha", alpha)
        if not 0.0 < self.alpha <= 1.0:
            raise ValueError(f"alpha={alpha!r} is not allowed: expected a number in (0, 1]")
        self.label_smoothing = _label_smoothing(label_smoothing)
        self.register_buffer("recall", torch.ones(self.num_classes))
        self.trajectory = _Trajectory()

    def costs(self) -> torch.Tensor:
        return (self.recall.mean() / self.recall.clamp_min(MIN_BASE)) ** self.gamma

    @torch.no_grad()
    def _update_recall(self, predictions: torch.Tensor, targets: torch.Tensor) -> None:
        counts, hits = _class_counts_and_hits(targets, predictions == targets, self.num_classes)
        smoothed = self.alpha * hits / counts.clamp_min(1) + (1 - self.alpha) * self.recall
        self.recall.copy_(torch.where(counts > 0, smoothed, self.recall))
        self.trajectory.append(len(self.trajectory) + 1, self.costs())

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        _check_batch(logits, targets, self.num_classes)
        logits = logits.float()
        if self.training:
            self._update_recall(logits.detach().argmax(dim=1), targets)
        return F.cross_entropy(logits - self.costs().log(), targets, label_smoothing=self.label_smoothing)

    def record(self) -> dict:
        steps, rows = self.trajectory.as_lists()
        return {"weights": _as_list(self.costs()), "recall": _as_list(self.recall), "trajectory": rows,
                "trajectory_steps": steps, "gamma": self.gamma, "alpha": self.alpha}
