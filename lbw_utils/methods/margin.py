"""Difficulty margins (method ``margin``): logit adjustment with per-class costs from measured difficulty.

Costs ``w_c = (mean r / r_c) ** gamma`` from per-class recall ``r`` (the Q&A question's formula's weights,
since ``1 - (r_c - mean r) / r_c = mean r / r_c``) enter the loss additively, as in logit adjustment
(Menon et al., ICLR 2021): ``CE(f(x) - log w, y)`` in training, plain ``f(x)`` at test time, so a hard
class's scores are pushed up by ``log w_c``. Unlike weights, such shifts keep acting once a network fits
its training set (Byrd & Lipton, ICML 2019; Cao et al., LDAM, NeurIPS 2019).

``gamma`` is the temperature of the margins: ``log w_c = gamma * log(mean r / r_c)``, so it scales every
class's shift at once (``gamma = 1`` is Menon et al.'s ``tau = 1`` applied to difficulty instead of priors).

Two forms of the same margins ``log w``:

* ``form="logit-adjusted"`` (default): every logit is shifted, ``CE(f(x) - log w, y)``; the decision
  between classes y and k must clear ``log w_y - log w_k``;
* ``form="ldam"`` (after LDAM, Cao et al., NeurIPS 2019): only the true logit is lowered,
  ``CE(f(x) - Delta_y e_y, y)`` with ``Delta = log w - min log w`` (the easiest class needs no margin),
  so class y must beat *every* rival by ``Delta_y``. LDAM's margins come from class counts and act on
  normalised, rescaled logits; here they come from measured difficulty and act on the raw logits.

``LogitAdjustedLoss`` takes fixed costs (``margin`` with ``source="static"``: from the baseline's
validation TPRs); ``DynamicMarginLoss`` follows an exponential moving average of each class's recall
in the training batches (``source="dynamic"``, the blog post's smoothing of batch false-negative rates,
applied to margins).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from lbw_utils.methods.common import (MIN_BASE, _as_list, _check_batch, _class_counts_and_hits, _class_weight_vector,
                                     _label_smoothing, _non_negative, _num_classes, _one_of, _smoothing_factor,
                                     _Trajectory)
from lbw_utils.methods.spec import MethodSpec, choice, fraction, non_negative, shown_value
from lbw_utils.methods.static import static_weights

MARGIN_SOURCES = ("static", "dynamic")
MARGIN_FORMS = ("logit-adjusted", "ldam")


def _shifted_logits(logits: torch.Tensor, targets: torch.Tensor, log_costs: torch.Tensor, form: str) -> torch.Tensor:
    """The logits the cross-entropy sees: all shifted by ``-log w``, or (ldam) the true one by ``-Delta_y``."""
    if form == "logit-adjusted":
        return logits - log_costs
    margins = log_costs - log_costs.min()
    return logits - F.one_hot(targets, logits.shape[1]).to(logits.dtype) * margins[targets][:, None]


class LogitAdjustedLoss(nn.Module):
    """``CE(f(x) - log w, y)`` with fixed per-class costs ``w`` (finite, > 0; e.g. from
    :func:`lbw_utils.methods.static_weights` with the Q&A question's formula); ``form="ldam"`` lowers only the
    true logit, by ``log w_y - min log w`` (module docstring)."""

    def __init__(self, costs: Any, label_smoothing: float = 0.0, form: str = "logit-adjusted") -> None:
        super().__init__()
        self.register_buffer("costs", _class_weight_vector("costs", costs))
        self.label_smoothing = _label_smoothing(label_smoothing)
        self.form = _one_of("form", form, MARGIN_FORMS)

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        _check_batch(logits, targets, self.costs.numel())
        shifted = _shifted_logits(logits.float(), targets, self.costs.log(), self.form)
        return F.cross_entropy(shifted, targets, label_smoothing=self.label_smoothing)

    def record(self) -> dict:
        return {"weights": _as_list(self.costs), "margins": _as_list(self.costs.log()), "form": self.form}


class DynamicMarginLoss(nn.Module):
    """Logit adjustment with costs from a running estimate of each class's recall.

    ``recall`` starts at ones; on every call in training mode, before the loss, each class c present
    in the batch gets ``recall_c <- alpha * batch_recall_c + (1 - alpha) * recall_c`` (absent classes
    keep theirs). Costs ``w = (mean recall / max(recall, MIN_BASE)) ** gamma``; the loss is
    ``CE(f(x) - log w, y)`` (or the ldam form). ``record()`` holds the costs, the recall and a trajectory
    of the costs.
    """

    def __init__(self, num_classes: int, gamma: float = 4.0, alpha: float = 0.01,
                 label_smoothing: float = 0.0, form: str = "logit-adjusted") -> None:
        super().__init__()
        self.num_classes = _num_classes(num_classes)
        self.gamma = _non_negative("gamma", gamma)
        self.alpha = _smoothing_factor("alpha", alpha)
        self.label_smoothing = _label_smoothing(label_smoothing)
        self.form = _one_of("form", form, MARGIN_FORMS)
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
        shifted = _shifted_logits(logits, targets, self.costs().log(), self.form)
        return F.cross_entropy(shifted, targets, label_smoothing=self.label_smoothing)

    def record(self) -> dict:
        steps, rows = self.trajectory.as_lists()
        return {"weights": _as_list(self.costs()), "recall": _as_list(self.recall), "trajectory": rows,
                "trajectory_steps": steps, "gamma": self.gamma, "alpha": self.alpha, "form": self.form}


# --------------------------------------------------------------------------
# The entry. Defaults: gamma 4, the question's formula's (best static trade-off on Fashion-MNIST), gives margins
# log w of about +0.9 (shirt) to -0.25 (bag), about one logit; alpha 0.01 as in ema.
# --------------------------------------------------------------------------

def _margin(options, num_classes, tpr, label_smoothing):
    if options["source"] == "static":
        costs = static_weights(tpr, "mean-ratio", gamma=options["gamma"], num_classes=num_classes)
        return LogitAdjustedLoss(costs, label_smoothing, form=options["form"])
    return DynamicMarginLoss(num_classes, gamma=options["gamma"], alpha=options["alpha"],
                             label_smoothing=label_smoothing, form=options["form"])


def _margin_text(options: dict) -> str:
    kind = "logit margin" if options["form"] == "logit-adjusted" else "LDAM-style margin"
    if options["source"] == "static":
        return f"{kind} from TPRs, γ = {shown_value(options['gamma'])}"
    return f"{kind} from EMA recall, γ = {shown_value(options['gamma'])}, α = {shown_value(options['alpha'])}"


def _margin_constraint(options: dict) -> None:
    if options.get("source", "static") == "static" and "alpha" in options:
        raise ValueError("method 'margin' with source='static' takes no 'alpha' (that is the dynamic source's)")


SPECS = [
    MethodSpec("margin", "train",
               {"source": choice("static", MARGIN_SOURCES), "gamma": non_negative(4.0),
                "alpha": fraction(0.01, open_low=True), "form": choice("logit-adjusted", MARGIN_FORMS)},
               build=_margin, needs_baseline_tpr=lambda o: o["source"] == "static", constraint=_margin_constraint,
               summary="difficulty margins: logit adjustment (or LDAM-style) with costs from measured recall",
               display=_margin_text),
]
