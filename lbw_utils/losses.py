"""Training losses that weight classes by how hard they are to learn.

Every loss here is an ``nn.Module`` called as ``loss(logits, targets)`` with
float logits ``[B, C]`` and int64 targets ``[B]``; it returns a scalar. The
forward pass never waits for the device (no ``.item()``, no Python loop over
classes), so the training loop stays asynchronous on a GPU. Under autocast the
loss is computed in float32.

Two optional hooks, called by the training loop when present:

* ``on_epoch_end(epoch, val_logits, val_targets)`` after every epoch, with the
  logits of the whole validation split (used by :class:`CDBLoss`);
* ``record()`` returns JSON-serialisable data for the run record: always a
  ``"weights"`` entry and, for losses whose weights change during training, a
  ``"trajectory"`` (per-class weights over time, a list of lists of floats).

What lives here
---------------
``static_weights``          weights from measured TPRs (seeds 000/001 and variants)
``CrossEntropy``            the plain baseline
``WeightedCrossEntropy``    cross-entropy with fixed per-class weights
``EMAWeightedCrossEntropy`` seed 003: weights = smoothed per-batch false-negative rate
``FocalLoss``               Lin et al. 2017
``CDBLoss``                 class-wise difficulty-balanced loss, Sinha et al. 2020
``ClassDROLoss``            group DRO (Sagawa et al. 2020) with classes as groups
``make_loss``               builds one of the above from a method dict
"""

from __future__ import annotations

import math
from numbers import Real
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

STATIC_SCHEMES = ("peifer", "inverse", "cdb", "fnr")

# Floor for the difficulty base ``1 - TPR`` of the cdb/fnr schemes and of CDBLoss:
# a class recalled perfectly would otherwise get weight 0 and drop out of the loss.
MIN_BASE = 1e-3

# Dynamic losses keep one weight vector per update; a run record keeps at most
# this many of them, evenly spaced (first and last included), so records stay small.
MAX_TRAJECTORY_ROWS = 500

# Denominator guard of the CDB paper's dynamic tau (the official code's epsilon).
CDB_DYNAMIC_TAU_EPSILON = 0.01


# --------------------------------------------------------------------------
# Argument checks shared by every loss
# --------------------------------------------------------------------------

def _finite_number(name: str, value: Any) -> float:
    """``value`` as a float, or a ValueError naming ``name`` if it is not a finite real number."""
    if isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(value):
        raise ValueError(f"{name}={value!r} is not allowed: expected a finite real number")
    return float(value)


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
        raise ValueError(
            f"{name} must be finite and > 0 for every class; class index {bad[0]} has "
            f"{vector[bad[0]].item()!r}"
        )
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
        raise ValueError(
            f"{name} must be a non-empty 1-D sequence of numbers, got shape {tuple(vector.shape)}"
        )
    not_finite = torch.nonzero(~torch.isfinite(vector)).flatten().tolist()
    if not_finite:
        raise ValueError(
            f"{name} must be finite; class index {not_finite[0]} has {vector[not_finite[0]].item()!r}"
        )
    return vector


def _check_batch(logits: torch.Tensor, targets: torch.Tensor, num_classes: int | None) -> None:
    """Shape and dtype checks only: they read metadata, so they never wait for the device."""
    if logits.dim() != 2:
        raise ValueError(f"logits must have shape [B, C], got shape {tuple(logits.shape)}")
    if targets.dim() != 1 or targets.shape[0] != logits.shape[0]:
        raise ValueError(
            f"targets must have shape [B] with B = logits.shape[0] = {logits.shape[0]}, "
            f"got shape {tuple(targets.shape)}"
        )
    if targets.dtype != torch.long:
        raise ValueError(f"targets must be int64 class indices, got dtype {targets.dtype}")
    if num_classes is not None and logits.shape[1] != num_classes:
        raise ValueError(
            f"logits have {logits.shape[1]} classes (logits.shape[1]) but this loss was built "
            f"for {num_classes} classes"
        )


# --------------------------------------------------------------------------
# Small tensor helpers
# --------------------------------------------------------------------------

def _difficulty_base(accuracy: torch.Tensor) -> torch.Tensor:
    """``max(1 - accuracy, MIN_BASE)``: a class's error rate, floored so it never weighs 0."""
    return (1.0 - accuracy).clamp_min(MIN_BASE)


def _class_counts_and_hits(
    targets: torch.Tensor, correct: torch.Tensor, num_classes: int
) -> tuple[torch.Tensor, torch.Tensor]:
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


# --------------------------------------------------------------------------
# Static weights from measured TPRs
# --------------------------------------------------------------------------

def static_weights(
    tpr: Any,
    scheme: str = "peifer",
    gamma: float = 4.0,
    normalize: bool = False,
    *,
    num_classes: int | None = None,
) -> torch.Tensor:
    """Per-class loss weights from per-class true-positive rates ``s`` (validation recall).

    Schemes (``m = mean(s)``, all computed in float64, returned as float32):

    * ``"peifer"``  (seeds 000/001): ``w_c = (1 - (s_c - m) / s_c) ** gamma``.
      Since ``1 - (s_c - m)/s_c = m / s_c`` this is ``(m / s_c) ** gamma``:
      inverse-TPR weights up to a constant factor ``m ** gamma``.
    * ``"inverse"``: ``w_c = (1 / s_c) ** gamma``.
    * ``"cdb"``      (class-wise difficulty-balanced): ``w_c = max(1 - s_c, MIN_BASE) ** gamma``;
      ``gamma`` plays the role of CDB's ``tau``.
    * ``"fnr"``      (linear false-negative rate): ``w_c = max(1 - s_c, MIN_BASE)``;
      ``gamma`` is ignored.

    The floor ``MIN_BASE = 1e-3`` keeps a perfectly recalled class (``s_c = 1``)
    in the loss instead of giving it weight 0. ``normalize=True`` rescales the
    weights to mean 1. Note that ``WeightedCrossEntropy`` (PyTorch's weighted
    mean divides by the sum of the batch's weights) is blind to a global scale:
    there only the *ratios* between weights matter, and ``normalize`` changes
    the recorded numbers, not the training.

    Seed 000's test vector (with its erratum: the text says exponent 4 but the
    printed weights are those of exponent 2): for
    ``s = [0.9560878243512974, 0.7365384615384616, 0.7807933194154488]``,
    ``gamma=2`` gives ``[0.7436..., 1.2530..., 1.1150...]``.

    Raises ``ValueError`` for an unknown scheme, input that is not a non-empty
    1-D sequence of finite numbers in [0, 1], a length other than
    ``num_classes``, a TPR of exactly 0 for ``peifer``/``inverse`` (division by
    zero), a negative or non-finite ``gamma``, and weights that come out
    non-finite or not positive (e.g. a tiny TPR with a large ``gamma``
    overflows); the message names the offending class index.
    """
    if scheme not in STATIC_SCHEMES:
        raise ValueError(f"scheme={scheme!r} is not allowed: expected one of {STATIC_SCHEMES}")
    gamma = _non_negative("gamma", gamma)
    s = _as_float64_vector("tpr", tpr)
    if num_classes is not None and s.numel() != num_classes:
        raise ValueError(f"tpr has {s.numel()} entries but num_classes={num_classes!r}")
    outside = torch.nonzero((s < 0) | (s > 1)).flatten().tolist()
    if outside:
        raise ValueError(
            f"tpr values must lie in [0, 1]; class index {outside[0]} has {s[outside[0]].item()!r}"
        )

    if scheme in ("peifer", "inverse"):
        zeros = torch.nonzero(s == 0).flatten().tolist()
        if zeros:
            raise ValueError(
                f"scheme={scheme!r} divides by the TPR, but class index {zeros[0]} has TPR 0; "
                f"use scheme='cdb' or 'fnr', or a baseline that recalls every class at least once"
            )
    if scheme == "peifer":
        weights = (1.0 - (s - s.mean()) / s) ** gamma
    elif scheme == "inverse":
        weights = (1.0 / s) ** gamma
    elif scheme == "cdb":
        weights = _difficulty_base(s) ** gamma
    else:  # fnr
        weights = _difficulty_base(s)

    bad = torch.nonzero(~(torch.isfinite(weights) & (weights > 0))).flatten().tolist()
    if bad:
        raise ValueError(
            f"scheme={scheme!r} with gamma={gamma!r} gives class index {bad[0]} "
            f"(TPR {s[bad[0]].item()!r}) the weight {weights[bad[0]].item()!r}; weights must be "
            f"finite and > 0: lower gamma"
        )
    if normalize:
        weights = weights / weights.mean()
    return weights.float()


# --------------------------------------------------------------------------
# Cross-entropy, plain and with fixed weights
# --------------------------------------------------------------------------

class CrossEntropy(nn.Module):
    """Plain cross-entropy, the baseline, with the same interface as the weighted losses.

    ``record()`` returns ``{"weights": None}``: ``None`` rather than a vector of
    ones, so a record of the unweighted baseline cannot be mistaken for a
    weighted run whose weights happen to be equal.
    """

    def __init__(self, label_smoothing: float = 0.0) -> None:
        super().__init__()
        self.label_smoothing = _label_smoothing(label_smoothing)

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        _check_batch(logits, targets, None)
        return F.cross_entropy(logits.float(), targets, label_smoothing=self.label_smoothing)

    def record(self) -> dict:
        return {"weights": None}


class WeightedCrossEntropy(nn.Module):
    """Cross-entropy with fixed per-class weights ``w`` (e.g. from :func:`static_weights`).

    ``loss = sum_i w[y_i] * CE_i / sum_i w[y_i]`` (PyTorch's weighted mean), so
    multiplying all weights by a constant changes nothing; only their ratios do.
    """

    def __init__(self, weights: Any, label_smoothing: float = 0.0) -> None:
        super().__init__()
        self.register_buffer("weights", _class_weight_vector("weights", weights))
        self.label_smoothing = _label_smoothing(label_smoothing)

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        _check_batch(logits, targets, self.weights.numel())
        return F.cross_entropy(
            logits.float(), targets, weight=self.weights, label_smoothing=self.label_smoothing
        )

    def record(self) -> dict:
        return {"weights": _as_list(self.weights)}


# --------------------------------------------------------------------------
# Seed 003: weights = exponentially smoothed per-batch false-negative rate
# --------------------------------------------------------------------------

class EMAWeightedCrossEntropy(nn.Module):
    """Cross-entropy weighted by a running estimate of each class's false-negative rate (seed 003).

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

    def __init__(
        self,
        num_classes: int,
        alpha: float = 0.01,
        normalize: bool = False,
        label_smoothing: float = 0.0,
    ) -> None:
        super().__init__()
        self.num_classes = _num_classes(num_classes)
        self.alpha = _finite_number("alpha", alpha)
        if not 0.0 < self.alpha <= 1.0:
            raise ValueError(f"alpha={alpha!r} is not allowed: expected a number in (0, 1]")
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
        return {
            "weights": _as_list(self.class_weights()),
            "importance": _as_list(self.importance),
            "trajectory": rows,
            "trajectory_steps": steps,
            "alpha": self.alpha,
            "normalize": self.normalize,
        }


# --------------------------------------------------------------------------
# Methods from the literature
# --------------------------------------------------------------------------

class FocalLoss(nn.Module):
    """Focal loss (Lin et al., ICCV 2017): ``FL_i = -w[y_i] (1 - p_i) ** gamma * log p_i``.

    ``p_i`` is the softmax probability of the true class; the loss is the plain
    mean of ``FL_i`` over the batch (``w`` = optional per-class weights, Lin et
    al.'s alpha; ones when ``None``). ``gamma=0`` gives cross-entropy.

    ``label_smoothing=eps`` replaces the one-hot target by
    ``q = (1 - eps) * onehot + eps / C`` and sums the focal term over classes,
    ``FL_i = -w[y_i] sum_k q_k (1 - p_k) ** gamma log p_k``; with ``gamma=0``
    this is exactly PyTorch's label-smoothed cross-entropy.
    """

    def __init__(self, gamma: float = 2.0, weights: Any = None, label_smoothing: float = 0.0) -> None:
        super().__init__()
        self.gamma = _non_negative("gamma", gamma)
        self.label_smoothing = _label_smoothing(label_smoothing)
        self.register_buffer(
            "weights", None if weights is None else _class_weight_vector("weights", weights)
        )

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        num_classes = None if self.weights is None else self.weights.numel()
        _check_batch(logits, targets, num_classes)
        log_p = F.log_softmax(logits.float(), dim=1)
        # -expm1(log p) is 1 - p without cancellation; the floor keeps the gradient of
        # (1 - p) ** gamma finite for gamma < 1 when p rounds to 1.
        one_minus_p = (-torch.expm1(log_p)).clamp_min(1e-12)
        focal_terms = -(one_minus_p ** self.gamma) * log_p  # [B, C]
        if self.label_smoothing == 0.0:
            per_sample = focal_terms.gather(1, targets[:, None]).squeeze(1)
        else:
            num_classes = log_p.shape[1]
            one_hot = F.one_hot(targets, num_classes).to(log_p.dtype)
            target_distribution = (1.0 - self.label_smoothing) * one_hot + self.label_smoothing / num_classes
            per_sample = (target_distribution * focal_terms).sum(dim=1)
        if self.weights is not None:
            per_sample = per_sample * self.weights[targets]
        return per_sample.mean()

    def record(self) -> dict:
        weights = None if self.weights is None else _as_list(self.weights)
        return {"weights": weights, "gamma": self.gamma}


def cdb_dynamic_tau(accuracy: torch.Tensor) -> torch.Tensor:
    """The CDB paper's data-driven exponent: ``tau = 2 * sigmoid(max(acc) / (min(acc) + 0.01) - 1)``.

    Written as in the official implementation (hitachi-rd-cv/CDB-loss,
    ``ImageNet-LT/loss/CDBSoftmaxLoss.py``), which states it with class
    difficulties ``d = 1 - acc``: ``b = (1 - min d) / (1 - max d + eps) - 1``.
    Equal accuracies give ``tau = 1``; the wider the spread, the closer tau
    gets to 2. (That repository's CIFAR-LT/EGTEA files use ``sigmoid(b + 1)``
    instead; we follow the ImageNet-LT form. The paper's text itself could not
    be checked here.) Returns a 0-d tensor on ``accuracy``'s device (no sync).
    """
    ratio = accuracy.max() / (accuracy.min() + CDB_DYNAMIC_TAU_EPSILON)
    return 2.0 * torch.sigmoid(ratio - 1.0)


class CDBLoss(nn.Module):
    """Class-wise difficulty-balanced loss (Sinha, Ohashi & Nakamura, ACCV 2020).

    Cross-entropy (PyTorch's weighted mean, as in the official code) with
    per-class weights ``w_c ∝ max(1 - acc_c, MIN_BASE) ** tau``, where ``acc_c`` is
    class c's accuracy (recall) on the validation split. The weights start at
    ones and are recomputed in :meth:`on_epoch_end` after every epoch, so they
    follow the model as classes become easier or harder.

    ``tau`` is a number >= 0 or ``"dynamic"`` (see :func:`cdb_dynamic_tau`,
    recomputed each epoch from that epoch's accuracies).

    The weights are normalised to mean 1, so their scale is the same every
    epoch and matches the other methods' records. (PyTorch's weighted mean
    divides by the batch's summed weights, so the scale does not change
    training here; were the weights used in a plain mean, mean 1 would keep the
    effective learning rate that of CE.) A class absent from the validation
    split is given the mean accuracy of the present ones.

    ``record()`` holds the current ``"weights"``, the ``"trajectory"`` (one row
    per ``on_epoch_end`` call, ``"trajectory_epochs"`` the epochs passed in),
    and the ``"tau"`` used at each of those epochs.
    """

    def __init__(self, num_classes: int, tau: float | str = 1.0, label_smoothing: float = 0.0) -> None:
        super().__init__()
        self.num_classes = _num_classes(num_classes)
        if tau != "dynamic":
            try:
                tau = _non_negative("tau", tau)
            except ValueError:
                raise ValueError(
                    f"tau={tau!r} is not allowed: expected a finite number >= 0 or 'dynamic'"
                ) from None
        self.tau = tau
        self.label_smoothing = _label_smoothing(label_smoothing)
        self.register_buffer("weights", torch.ones(self.num_classes))
        self.trajectory = _Trajectory()
        self._taus: list[torch.Tensor] = []

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        _check_batch(logits, targets, self.num_classes)
        return F.cross_entropy(
            logits.float(), targets, weight=self.weights, label_smoothing=self.label_smoothing
        )

    @torch.no_grad()
    def on_epoch_end(self, epoch: int, val_logits: torch.Tensor, val_targets: torch.Tensor) -> None:
        _check_batch(val_logits, val_targets, self.num_classes)
        if val_targets.shape[0] == 0:
            raise ValueError("val_targets is empty: CDBLoss needs validation samples")
        # A sync, but once per epoch: out-of-range labels would silently miscount.
        low, high = int(val_targets.min()), int(val_targets.max())
        if low < 0 or high >= self.num_classes:
            raise ValueError(
                f"val_targets must lie in [0, {self.num_classes - 1}], found values in [{low}, {high}]"
            )
        val_logits = val_logits.to(self.weights.device)
        val_targets = val_targets.to(self.weights.device)
        predictions = val_logits.argmax(dim=1)
        counts, hits = _class_counts_and_hits(val_targets, predictions == val_targets, self.num_classes)
        present = counts > 0
        accuracy = hits / counts.clamp_min(1)
        mean_present = (accuracy * present).sum() / present.sum()
        accuracy = torch.where(present, accuracy, mean_present)

        tau = cdb_dynamic_tau(accuracy) if self.tau == "dynamic" else torch.tensor(self.tau)
        tau = tau.to(accuracy)
        weights = _difficulty_base(accuracy) ** tau
        self.weights.copy_(weights / weights.mean())
        self.trajectory.append(epoch, self.weights)
        self._taus.append(tau)

    def record(self) -> dict:
        epochs, rows = self.trajectory.as_lists()
        taus = [float(t) for t in torch.stack(self._taus).cpu().tolist()] if self._taus else []
        return {
            "weights": _as_list(self.weights),
            "trajectory": rows,
            "trajectory_epochs": epochs,
            "tau": taus,
            "tau_setting": self.tau,
        }


class ClassDROLoss(nn.Module):
    """Class-level distributionally robust optimisation (group DRO, Sagawa et al., ICLR 2020,
    with the classes as the groups).

    A distribution ``q`` over classes starts uniform. On every call in training
    mode, before the loss: with ``L_c`` the mean cross-entropy of the batch's
    class-c samples, ``q_c <- q_c * exp(eta * L_c)`` for the classes present
    (absent ones keep ``q_c``), then ``q`` is renormalised to sum 1 (done as a
    softmax of ``log q + eta * L`` for numerical safety; no gradient flows into q).

    The loss is ``mean_i(C * q[y_i] * CE_i) = C * sum_c q_c * S_c / B`` with
    ``S_c`` the summed cross-entropy of class c's samples: per-sample weights
    ``C * q`` (mean 1). When ``q`` is uniform (at the start, or with ``eta=0``)
    this is exactly the plain mean cross-entropy, whatever the batch's class
    mix. Sagawa et al.'s ``sum_c q_c L_c`` differs from it by the factor
    ``C * n_c / B`` per class, which is 1 on average under class-balanced sampling.

    ``record()`` gives ``"weights" = C * q``, ``"q"``, and a ``"trajectory"`` of
    ``C * q`` after every update, subsampled like :class:`EMAWeightedCrossEntropy`'s.
    """

    def __init__(self, num_classes: int, eta: float = 0.01, label_smoothing: float = 0.0) -> None:
        super().__init__()
        self.num_classes = _num_classes(num_classes)
        self.eta = _non_negative("eta", eta)
        self.label_smoothing = _label_smoothing(label_smoothing)
        self.register_buffer("q", torch.full((self.num_classes,), 1.0 / self.num_classes))
        self.trajectory = _Trajectory()

    def class_weights(self) -> torch.Tensor:
        return self.num_classes * self.q

    @torch.no_grad()
    def _update_q(self, per_sample: torch.Tensor, targets: torch.Tensor) -> None:
        # One-hot column sums rather than scatter_add/index_add (nondeterministic on CUDA)
        # or a matmul (which autocast would run in half precision).
        one_hot = F.one_hot(targets, self.num_classes).to(per_sample.dtype)
        class_sums = (one_hot * per_sample[:, None]).sum(dim=0)
        class_counts = one_hot.sum(dim=0)
        class_means = class_sums / class_counts.clamp_min(1)  # 0 for absent classes: q_c unchanged
        self.q.copy_(torch.softmax(self.q.log() + self.eta * class_means, dim=0))
        self.trajectory.append(len(self.trajectory) + 1, self.class_weights())

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        _check_batch(logits, targets, self.num_classes)
        per_sample = F.cross_entropy(logits.float(), targets, reduction="none",
                                     label_smoothing=self.label_smoothing)
        if self.training:
            self._update_q(per_sample.detach(), targets)
        return (per_sample * self.class_weights()[targets]).mean()

    def record(self) -> dict:
        steps, rows = self.trajectory.as_lists()
        return {
            "weights": _as_list(self.class_weights()),
            "q": _as_list(self.q),
            "trajectory": rows,
            "trajectory_steps": steps,
            "eta": self.eta,
        }


# --------------------------------------------------------------------------
# Registry used by the experiment layer
# --------------------------------------------------------------------------

# Method name -> the keys its dict may hold besides "name".
METHOD_KEYS: dict[str, tuple[str, ...]] = {
    "baseline": (),
    "static": ("scheme", "gamma", "normalize"),
    "ema": ("alpha", "normalize"),
    "focal": ("gamma",),
    "cdb": ("tau",),
    "dro": ("eta",),
}
LOSS_METHODS = tuple(METHOD_KEYS)


def make_loss(
    method: dict,
    num_classes: int,
    *,
    tpr: Any = None,
    label_smoothing: float = 0.0,
) -> nn.Module:
    """Build the loss a method dict describes.

    ``method`` is e.g. ``{"name": "baseline"}``,
    ``{"name": "static", "scheme": "peifer", "gamma": 4, "normalize": False}``,
    ``{"name": "ema", "alpha": 0.01, "normalize": True}``, ``{"name": "focal", "gamma": 2}``,
    ``{"name": "cdb", "tau": 1.0}`` or ``{"name": "dro", "eta": 0.01}``; keys left
    out take the defaults of the underlying function/class.

    ``tpr`` (the baseline run's *validation* TPRs, never the test split's) is
    required by ``"static"`` and ignored by the other methods.
    """
    num_classes = _num_classes(num_classes)
    if not isinstance(method, dict) or "name" not in method:
        raise ValueError(f"method={method!r} is not allowed: expected a dict with a 'name' key")
    name = method["name"]
    if not isinstance(name, str) or name not in METHOD_KEYS:
        raise ValueError(f"method name {name!r} is unknown: expected one of {LOSS_METHODS}")
    options = {key: value for key, value in method.items() if key != "name"}
    unknown = sorted(set(options) - set(METHOD_KEYS[name]))
    if unknown:
        raise ValueError(
            f"method {name!r} got unknown key(s) {unknown}: allowed keys are {METHOD_KEYS[name]}"
        )

    if name == "baseline":
        return CrossEntropy(label_smoothing)
    if name == "static":
        if tpr is None:
            raise ValueError(
                "method 'static' needs tpr=: the baseline run's validation TPRs (same seed)"
            )
        weights = static_weights(tpr, num_classes=num_classes, **options)
        return WeightedCrossEntropy(weights, label_smoothing)
    if name == "ema":
        return EMAWeightedCrossEntropy(num_classes, label_smoothing=label_smoothing, **options)
    if name == "focal":
        return FocalLoss(label_smoothing=label_smoothing, **options)
    if name == "cdb":
        return CDBLoss(num_classes, label_smoothing=label_smoothing, **options)
    return ClassDROLoss(num_classes, label_smoothing=label_smoothing, **options)
