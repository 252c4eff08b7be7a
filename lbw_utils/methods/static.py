"""Fixed class weights: the Q&A question's recipe's weights from measured TPRs, plain and weighted cross-entropy;
the methods ``baseline`` and ``static``."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from lbw_utils.methods.common import (STATIC_SCHEMES, _as_float64_vector, _as_list, _check_batch, _class_weight_vector,
                                     _difficulty_base, _label_smoothing, _non_negative, _one_of)
from lbw_utils.methods.spec import MethodSpec, choice, flag, non_negative, shown_value


# --------------------------------------------------------------------------
# Static weights from measured TPRs
# --------------------------------------------------------------------------

def static_weights(tpr: Any, scheme: str = "mean-ratio", gamma: float = 4.0, normalize: bool = False, *,
                   num_classes: int | None = None) -> torch.Tensor:
    """Per-class loss weights from per-class true-positive rates ``s`` (validation recall).

    Schemes (``m = mean(s)``, all computed in float64, returned as float32):

    * ``"mean-ratio"``: ``w_c = (m / s_c) ** gamma``, the ratio of the mean TPR to the class's TPR.
      This is the formula of T. Peifer's draft paper "Loss weighting for learnability imbalance in
      multiclass-classification", written there as ``w_c = (1 - (s_c - m) / s_c) ** gamma``; since
      ``1 - (s_c - m)/s_c = m / s_c`` the two are the same: inverse-TPR weights up to a constant
      factor ``m ** gamma``. (Called ``"peifer"`` before; the name now says what it computes.)
    * ``"inverse"``: ``w_c = (1 / s_c) ** gamma``.
    * ``"cdb"``      (class-wise difficulty-balanced): ``w_c = max(1 - s_c, MIN_BASE) ** gamma``;
      ``gamma`` plays the role of CDB's ``tau`` (a method dict calls it so:
      ``{"name": "static", "scheme": "cdb", "tau": 1}``).
    * ``"fnr"``      (linear false-negative rate): ``w_c = max(1 - s_c, MIN_BASE)``;
      ``gamma`` is ignored.

    The floor ``MIN_BASE = 1e-3`` keeps a perfectly recalled class (``s_c = 1``)
    in the loss instead of giving it weight 0. ``normalize=True`` rescales the
    weights to mean 1. Note that ``WeightedCrossEntropy`` (PyTorch's weighted
    mean divides by the sum of the batch's weights) is blind to a global scale:
    there only the *ratios* between weights matter, and ``normalize`` changes
    the recorded numbers, not the training.

    The draft paper's test vector (with its erratum: the text says exponent 4 but the
    printed weights are those of exponent 2): for
    ``s = [0.9560878243512974, 0.7365384615384616, 0.7807933194154488]``,
    ``gamma=2`` gives ``[0.7436..., 1.2530..., 1.1150...]``.

    Raises ``ValueError`` for an unknown scheme, input that is not a non-empty
    1-D sequence of finite numbers in [0, 1], a length other than
    ``num_classes``, a TPR of exactly 0 for ``mean-ratio``/``inverse`` (division by
    zero), a negative or non-finite ``gamma``, and weights that come out
    non-finite or not positive (e.g. a tiny TPR with a large ``gamma``
    overflows); the message names the offending class index.
    """
    _one_of("scheme", scheme, STATIC_SCHEMES)
    gamma = _non_negative("gamma", gamma)
    s = _as_float64_vector("tpr", tpr)
    if num_classes is not None and s.numel() != num_classes:
        raise ValueError(f"tpr has {s.numel()} entries but num_classes={num_classes!r}")
    outside = torch.nonzero((s < 0) | (s > 1)).flatten().tolist()
    if outside:
        raise ValueError(f"tpr values must lie in [0, 1]; class index {outside[0]} has {s[outside[0]].item()!r}")

    if scheme in ("mean-ratio", "inverse"):
        zeros = torch.nonzero(s == 0).flatten().tolist()
        if zeros:
            raise ValueError(f"scheme={scheme!r} divides by the TPR, but class index {zeros[0]} has TPR 0; "
                             f"use scheme='cdb' or 'fnr', or a baseline that recalls every class at least once")
    if scheme == "mean-ratio":
        weights = (1.0 - (s - s.mean()) / s) ** gamma
    elif scheme == "inverse":
        weights = (1.0 / s) ** gamma
    elif scheme == "cdb":
        weights = _difficulty_base(s) ** gamma
    else:  # fnr
        weights = _difficulty_base(s)

    bad = torch.nonzero(~(torch.isfinite(weights) & (weights > 0))).flatten().tolist()
    if bad:
        raise ValueError(f"scheme={scheme!r} with gamma={gamma!r} gives class index {bad[0]} "
                         f"(TPR {s[bad[0]].item()!r}) the weight {weights[bad[0]].item()!r}; weights must be "
                         f"finite and > 0: lower gamma")
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
        return F.cross_entropy(logits.float(), targets, weight=self.weights, label_smoothing=self.label_smoothing)

    def record(self) -> dict:
        return {"weights": _as_list(self.weights)}


# --------------------------------------------------------------------------
# The entries: baseline and static weights (static gamma 4: the Q&A question's text; its printed weights are
# gamma 2, also in the cpu profile)
# --------------------------------------------------------------------------

def exponent_key(scheme: str | None) -> str:
    """The key that holds a static scheme's exponent in a method dict: ``tau`` for the class-difficulty
    scheme (CDB's name for it), ``gamma`` for the Q&A question's formula and the others."""
    return "tau" if scheme == "cdb" else "gamma"


def scheme_weights(options: dict, tpr, num_classes: int) -> torch.Tensor:
    """Static weights of a method's (complete) options: its scheme with that scheme's exponent."""
    return static_weights(tpr, options["scheme"], gamma=options[exponent_key(options["scheme"])],
                          normalize=options.get("normalize", False), num_classes=num_classes)


def exponent_constraint(method: str, options: dict, default_scheme: str | None) -> None:
    """Refuse the exponent key that the (given or default) scheme does not use: ``tau`` with ``cdb``, else ``gamma``."""
    scheme = options.get("scheme", default_scheme)
    wrong = "gamma" if exponent_key(scheme) == "tau" else "tau"
    if wrong in options:
        raise ValueError(f"method {method!r} with scheme={scheme!r} takes {exponent_key(scheme)!r} as its exponent, "
                         f"not {wrong!r} ('tau' belongs to scheme 'cdb', 'gamma' to the others)")


def scheme_text(options: dict) -> str:
    """The reader's name of a static scheme with its exponent (options complete): "TPR weights (Q&A recipe), γ = 4"
    for the question's formula, "inverse-TPR weights", "class-difficulty weights (1 - TPR)^τ", "false-negative-rate
    weights" (no exponent); ", normalised" where the weights are rescaled to mean 1."""
    scheme = options["scheme"]
    text = {"mean-ratio": f"TPR weights (Q&A recipe), γ = {shown_value(options['gamma'])}",
            "inverse": f"inverse-TPR weights, γ = {shown_value(options['gamma'])}",
            "cdb": f"class-difficulty weights (1 - TPR)^τ, τ = {shown_value(options['tau'])}",
            "fnr": "false-negative-rate weights"}[scheme]
    return text + (", normalised" if options.get("normalize") else "")


def _static(options, num_classes, tpr, label_smoothing):
    return WeightedCrossEntropy(scheme_weights(options, tpr, num_classes), label_smoothing)


SPECS = [
    MethodSpec("baseline", "train", build=lambda o, k, t, ls: CrossEntropy(ls), summary="plain cross-entropy",
               display="baseline"),
    MethodSpec("static", "train",
               {"scheme": choice("mean-ratio", STATIC_SCHEMES), "gamma": non_negative(4.0), "tau": non_negative(1.0),
                "normalize": flag(False)},
               build=_static, needs_baseline_tpr=True, constraint=lambda o: exponent_constraint("static", o, "mean-ratio"),
               label_leading=("scheme",), label_short={"normalize": "norm"},
               summary="fixed weights from the baseline's validation TPRs (Q&A question's formula and variants)",
               display=scheme_text),
]
