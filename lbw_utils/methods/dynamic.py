"""Weights that follow the model during training: the blog post's EMA of batch false-negative rates (method
``ema``), and the class-wise difficulty-balanced loss in both forms of its official code (method ``cdb``)."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from lbw_utils.methods.common import (CDB_DYNAMIC_TAU_EPSILON, _as_list, _check_batch, _class_counts_and_hits,
                                     _finite_number, _is_number, _label_smoothing, _num_classes, _one_of,
                                     _per_class_recall, _smoothing_factor, _Trajectory)
from lbw_utils.methods.spec import MethodSpec, Parameter, choice, flag, fraction, shown_value


# --------------------------------------------------------------------------
# Seed 003: weights = exponentially smoothed per-batch false-negative rate
# --------------------------------------------------------------------------

class EMAWeightedCrossEntropy(nn.Module):
    """Cross-entropy weighted by a running estimate of each class's false-negative rate (the blog post).

    ``importance`` starts at ones. On every call in training mode, *before* the
    loss is computed (as in the seed), each class c present in the batch gets::

        importance_c <- alpha * FNR_c + (1 - alpha) * importance_c

    with ``FNR_c`` the fraction of the batch's class-c samples whose argmax
    prediction is wrong; classes absent from the batch keep their importance.
    The loss is ``mean_i(CE_i * w[y_i])`` (a plain mean, as in the seed) with

    * ``normalize=False``: ``w = importance`` (faithful to the seed; the loss
      shrinks as the model improves, since every FNR falls towards 0);
    * ``normalize=True``: ``w = importance / mean(importance)`` (mean 1, so the
      loss scale, and with it the effective learning rate, stays that of CE).
      Should every importance reach exactly 0 (possible with ``alpha=1``) the
      weights fall back to ones.

    In eval mode (``self.training`` False) nothing is updated: the call just
    computes the weighted loss with the current weights.

    ``record()`` gives the current ``"weights"`` (effective), the raw
    ``"importance"``, and ``"trajectory"``: the effective weights after every
    update (``"trajectory_steps"`` numbers the updates from 1), subsampled
    evenly to at most ``MAX_TRAJECTORY_ROWS`` rows.
    """

    def __init__(self, num_classes: int, alpha: float = 0.01, normalize: bool = False,
                 label_smoothing: float = 0.0) -> None:
        super().__init__()
        self.num_classes = _num_classes(num_classes)
        self.alpha = _smoothing_factor("alpha", alpha)
        self.normalize = bool(normalize)
        self.label_smoothing = _label_smoothing(label_smoothing)
        self.register_buffer("importance", torch.ones(self.num_classes))
        self.trajectory = _Trajectory()

    def class_weights(self) -> torch.Tensor:
        """The weights the loss applies now (see the class docstring)."""
        return self._effective(self.importance)

    def _effective(self, importance: torch.Tensor) -> torch.Tensor:
        if not self.normalize:
            return importance
        mean = importance.mean(dim=-1, keepdim=True)
        # torch.where rather than an `if`: deciding on the host would need a sync.
        return torch.where(mean > 0, importance / mean.clamp_min(torch.finfo(importance.dtype).tiny),
                           torch.ones_like(importance))

    @torch.no_grad()
    def _update_importance(self, predictions: torch.Tensor, targets: torch.Tensor) -> None:
        counts, hits = _class_counts_and_hits(targets, predictions == targets, self.num_classes)
        false_negative_rate = (counts - hits) / counts.clamp_min(1)
        smoothed = self.alpha * false_negative_rate + (1 - self.alpha) * self.importance
        self.importance.copy_(torch.where(counts > 0, smoothed, self.importance))
        self.trajectory.append(len(self.trajectory) + 1, self.importance)

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        _check_batch(logits, targets, self.num_classes)
        logits = logits.float()
        # Cross-entropy first: on the CPU it rejects out-of-range targets before they touch the state.
        per_sample = F.cross_entropy(logits, targets, reduction="none",
                                     label_smoothing=self.label_smoothing)
        if self.training:
            self._update_importance(logits.detach().argmax(dim=1), targets)
        return (per_sample * self.class_weights()[targets]).mean()

    def record(self) -> dict:
        steps, rows = self.trajectory.as_lists(self._effective)
        return {"weights": _as_list(self.class_weights()), "importance": _as_list(self.importance), "trajectory": rows,
                "trajectory_steps": steps, "alpha": self.alpha, "normalize": self.normalize}


# --------------------------------------------------------------------------
# CDB: weights from each class's validation accuracy, recomputed every epoch
# --------------------------------------------------------------------------

CDB_VARIANTS = ("cifar", "imagenet")


def cdb_dynamic_tau(accuracy: torch.Tensor, variant: str = "imagenet") -> torch.Tensor:
    """The CDB paper's data-driven exponent, in the form of each official file.

    With class difficulties ``d = 1 - accuracy``, both files compute
    ``bias = (1 - min d) / (1 - max d + 0.01)`` (= max accuracy / (min accuracy + 0.01)), then

    * ``variant="cifar"``: ``tau = sigmoid(bias)`` (hitachi-rd-cv/CDB-loss, ``CIFAR-LT/losses/cdb_loss.py``);
    * ``variant="imagenet"``: ``tau = 2 * sigmoid(bias - 1)`` (``ImageNet-LT/loss/CDBSoftmaxLoss.py``).

    Equal accuracies give bias ~1: tau ~0.73 (cifar) or ~1 (imagenet); the wider the spread, the
    closer tau gets to 1 (cifar) or 2 (imagenet). Returns a 0-d tensor on ``accuracy``'s device.
    """
    _one_of("variant", variant, CDB_VARIANTS)
    bias = accuracy.max() / (accuracy.min() + CDB_DYNAMIC_TAU_EPSILON)
    return torch.sigmoid(bias) if variant == "cifar" else 2.0 * torch.sigmoid(bias - 1.0)


class CDBLoss(nn.Module):
    """Class-wise difficulty-balanced loss (Sinha, Ohashi & Nakamura, ACCV 2020), both official forms.

    After every epoch, with ``d_c = 1 - acc_c`` (class c's accuracy on the validation split), the
    weights become ``w = d ** tau`` scaled to mean 1; they start at ones. ``tau`` is a number >= 0 or
    ``"dynamic"`` (:func:`cdb_dynamic_tau`, recomputed each epoch). The two forms differ in how the
    per-sample cross-entropies ``CE_i`` are combined:

    * ``variant="cifar"`` (default; ``CIFAR-LT/cifar_train.py`` with ``CIFAR-LT/losses/cdb_loss.py``,
      the setting closest to ours: small images, validation every epoch): the loss is built with
      ``reduction='none'`` and the training loop takes a plain mean, ``mean_i(w[y_i] * CE_i)``;
    * ``variant="imagenet"`` (``ImageNet-LT/loss/CDBSoftmaxLoss.py``): PyTorch's weighted mean,
      ``sum_i w[y_i] CE_i / sum_i w[y_i]``, so only the weights' ratios act.

    A class at 100 % validation accuracy has ``d = 0`` and weight 0 in both official files: it
    drops out of the loss until its accuracy falls again. ``floor`` (e.g. ``MIN_BASE``; default
    None, as in the official code) clamps ``d`` from below so that it keeps a small weight. Should
    every class be perfect, the official code would divide by zero; here the weights stay ones.
    A batch whose samples all weigh 0 gives a loss of 0 (the imagenet form's 0/0 is guarded).
    With label smoothing, ``CE_i`` is the smoothed cross-entropy of sample i.

    ``record()`` holds the current ``"weights"``, the ``"trajectory"`` (one row per epoch,
    ``"trajectory_epochs"``), the ``"tau"`` of each epoch, the variant and the floor.
    """

    def __init__(self, num_classes: int, tau: float | str = "dynamic", label_smoothing: float = 0.0,
                 variant: str = "cifar", floor: float | None = None) -> None:
        super().__init__()
        self.num_classes = _num_classes(num_classes)
        if tau != "dynamic" and not (_is_number(tau) and tau >= 0):
            raise ValueError(f"tau={tau!r} is not allowed: expected a finite number >= 0 or 'dynamic'")
        tau = tau if tau == "dynamic" else float(tau)
        _one_of("variant", variant, CDB_VARIANTS)
        if floor is not None:
            floor = _finite_number("floor", floor)
            if not 0.0 < floor < 1.0:
                raise ValueError(f"floor={floor!r} is not allowed: expected a number in (0, 1), or None")
        self.tau, self.variant, self.floor = tau, variant, floor
        self.label_smoothing = _label_smoothing(label_smoothing)
        self.register_buffer("weights", torch.ones(self.num_classes))
        self.trajectory = _Trajectory()
        self._taus: list[torch.Tensor] = []

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        _check_batch(logits, targets, self.num_classes)
        per_sample = F.cross_entropy(logits.float(), targets, reduction="none",
                                     label_smoothing=self.label_smoothing)
        sample_weights = self.weights[targets]
        weighted = (per_sample * sample_weights).sum()
        if self.variant == "cifar":
            return weighted / targets.shape[0]
        return weighted / sample_weights.sum().clamp_min(torch.finfo(sample_weights.dtype).tiny)

    @torch.no_grad()
    def on_epoch_end(self, epoch: int, val_logits: torch.Tensor, val_targets: torch.Tensor) -> None:
        accuracy = _per_class_recall(val_logits.to(self.weights.device), val_targets.to(self.weights.device),
                                     self.num_classes)
        tau = cdb_dynamic_tau(accuracy, self.variant) if self.tau == "dynamic" else torch.tensor(self.tau)
        tau = tau.to(accuracy)
        difficulty = 1.0 - accuracy
        if self.floor is not None:
            difficulty = difficulty.clamp_min(self.floor)
        weights = difficulty ** tau
        total = weights.sum()
        # torch.where, not an `if`: deciding on the host would need a sync.
        self.weights.copy_(torch.where(total > 0, weights * self.num_classes / total.clamp_min(1e-30),
                                       torch.ones_like(weights)))
        self.trajectory.append(epoch, self.weights)
        self._taus.append(tau)

    def record(self) -> dict:
        epochs, rows = self.trajectory.as_lists()
        taus = [float(t) for t in torch.stack(self._taus).cpu().tolist()] if self._taus else []
        return {"weights": _as_list(self.weights), "trajectory": rows, "trajectory_epochs": epochs, "tau": taus,
                "tau_setting": self.tau, "variant": self.variant, "floor": self.floor}


# --------------------------------------------------------------------------
# The entries. Defaults, and why:
# - ema alpha 0.01: the blog post's value (about 100 batches of memory, a third of a Fashion-MNIST epoch);
# - cdb tau "dynamic", variant "cifar", no floor: the official CIFAR-LT code, the setting closest to ours.
# --------------------------------------------------------------------------

def _cdb_tau(value: Any) -> bool:
    return value == "dynamic" or (_is_number(value) and value >= 0)


def _cdb_floor(value: Any) -> bool:
    return value is None or (_is_number(value) and 0 < value < 1)


def _cdb_text(options: dict) -> str:
    form = "CIFAR-LT" if options["variant"] == "cifar" else "ImageNet-LT"
    tau = "dynamic τ" if options["tau"] == "dynamic" else f"τ = {shown_value(options['tau'])}"
    floor = "" if options["floor"] is None else f", floor {shown_value(options['floor'])}"
    return f"CDB ({form} form), {tau}{floor}"


SPECS = [
    MethodSpec("ema", "train", {"alpha": fraction(0.01, open_low=True), "normalize": flag(False)},
               build=lambda o, k, t, ls: EMAWeightedCrossEntropy(k, label_smoothing=ls, **o),
               label_short={"normalize": "norm"}, summary="the blog post: weights = EMA of batch false-negative rates",
               display=lambda o: f"{'normalised ' if o['normalize'] else ''}EMA weights, α = {shown_value(o['alpha'])}"),
    MethodSpec("cdb", "train",
               {"tau": Parameter("dynamic", _cdb_tau, "a finite number >= 0 or 'dynamic'"),
                "variant": choice("cifar", CDB_VARIANTS),
                "floor": Parameter(None, _cdb_floor, "a number in (0, 1), or None")},
               build=lambda o, k, t, ls: CDBLoss(k, label_smoothing=ls, **o),
               summary="class-wise difficulty-balanced loss, CIFAR-LT (default) or ImageNet-LT form",
               display=_cdb_text),
]
