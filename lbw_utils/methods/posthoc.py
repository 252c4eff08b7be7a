"""Post-hoc per-class logit offsets (method ``posthoc``): even out recall without retraining.

A trained model's logits get one additive offset per class,
``prediction = argmax(logits + offsets)``. The offsets are fitted on the
validation split and then applied unchanged to the test split. Raising a class's
offset moves the decision boundaries towards its rivals, trading their recall
for its own; it is the cheapest comparison point for any training-time weighting.

Objectives (TPR = per-class recall on the validation split):

* ``"worst"``: maximise the worst class's TPR. Ties are broken by the
  second-worst TPR, then the third, ... (leximin: it lets the search progress
  when two classes share the minimum), then by overall accuracy.
* ``"budget"``: the same, restricted to offsets whose validation accuracy is at
  least the unadjusted accuracy minus ``max_accuracy_drop``.
* ``"equalize"``: minimise the standard deviation of the TPRs, tie-broken by
  accuracy, under the same accuracy budget as ``"budget"`` (without it, equal
  TPRs could be bought by lowering every class; pass ``max_accuracy_drop=1`` to
  lift it).

Algorithm: deterministic coordinate ascent. For one class at a time, all
``2 * grid_steps + 1`` candidate offsets ``current + step * k`` (``k`` from
``-grid_steps`` to ``grid_steps``) are scored at once: with every other offset
fixed, each sample either goes to class c (its shifted logit beats the best
rival's) or stays with that rival, so a ``[candidates, samples]`` boolean matrix
and one matrix product give every candidate's per-class TPRs. The best candidate
is taken only if it strictly improves the objective (ties keep the current
offset). Passes over all classes repeat until none moves; then the step halves,
``refinements`` times. The first step is half the logits' standard deviation,
so the grid adapts to the logit scale.

The offsets are returned shifted to mean 0 (only differences between them
matter for an argmax).

Budgets held on unseen data (``hold="cross-fit"``, the default)
----------------------------------------------------------------
Fitted at the stated budget, the offsets overfit the validation split: with a 0.5-point budget and 2,000
validation images every post-hoc row lost 0.8-1.1 points of *test* accuracy. So the budget of ``"budget"``
and ``"equalize"`` is held by cross-fitting (:func:`fit_on_validation`): the validation split is cut into
two halves (the post-hoc kind passes its stratified, seeded halves); for an internal budget ``b`` on the
ladder ``BUDGET_LADDER`` (the stated budget x 1, 0.75, 0.5, 0.25, 0) offsets fitted at ``b`` on one half
predict the other, both ways, and the *cross-fitted drop* is the unadjusted validation accuracy minus the
accuracy of those out-of-half predictions. The largest ``b`` whose cross-fitted drop *plus one standard error*
(of the per-sample changes) is within the stated budget is taken (the ladder is walked from the top and stops
there), and the offsets applied to the test split are fitted on the whole validation split at that ``b``.
Where no rung holds, the offsets stay at 0: the run is left as it was, the one adjustment sure to keep the
budget. The run records the stated budget,
the internal budget chosen, the cross-fitted drop at it and every rung tried (``details``).

The record's validation scores are the cross-fitted predictions at the chosen ``b``; ``b`` was chosen on
them, so their accuracy drop is within the budget by construction: the test split says whether it held
(:func:`lbw_utils.studies.representation.budget_overshoot_table`). ``hold="none"`` fits at the stated budget
(the behaviour before; its label says ``holdnone``). ``"worst"`` has no budget, so there is nothing to hold.
An absolute floor (``min_accuracy``, the ceiling's: fitted on the split it describes) is taken as given.
Cost: two half-split fits per rung tried (at most five), then the whole-split fit.
"""

from __future__ import annotations

import math
from contextlib import contextmanager
from typing import Any, NamedTuple

import numpy as np
import torch

from lbw_utils.checks import check_positive_int
from lbw_utils.methods.common import _is_number
from lbw_utils.methods.kinds import stratified_halves
from lbw_utils.methods.spec import Adjustment, MethodSpec, Parameter, choice, fraction, points, positive_int

OFFSET_OBJECTIVES = ("worst", "budget", "equalize")
# The objectives with an accuracy budget (max_accuracy_drop), the ones whose budget is held on unseen data.
BUDGETED_OBJECTIVES = ("budget", "equalize")
# How the budget is held: "cross-fit" (module docstring), or "none" (fitted at the stated budget).
HOLD_MODES = ("cross-fit", "none")
# The internal budgets tried, as shares of the stated budget, largest first.
BUDGET_LADDER = (1.0, 0.75, 0.5, 0.25, 0.0)
# Seed of the halves a direct call of fit_logit_offsets draws itself (the post-hoc kind passes its own).
DIRECT_CALL_HALVES_SEED = 0

# --------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------

def apply_logit_offsets(logits: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
    """``logits + offsets`` (offsets broadcast over the batch); predict with ``argmax(dim=1)``."""
    if not isinstance(logits, torch.Tensor) or logits.dim() != 2:
        raise ValueError(f"logits must be a tensor of shape [N, C], got {_describe(logits)}")
    offsets = torch.as_tensor(offsets)
    if offsets.dim() != 1 or offsets.shape[0] != logits.shape[1]:
        raise ValueError(f"offsets must have shape [C] = [{logits.shape[1]}] to match the logits, "
                         f"got shape {tuple(offsets.shape)}")
    if not torch.isfinite(offsets).all():
        raise ValueError(f"offsets must be finite, got {offsets.tolist()}")
    return logits + offsets.to(device=logits.device, dtype=logits.dtype)


def fit_logit_offsets(val_logits: torch.Tensor, val_targets: torch.Tensor, objective: str = "worst",
                      max_accuracy_drop: float = 0.01, *, hold: str = "cross-fit",
                      halves: tuple[torch.Tensor, torch.Tensor] | None = None, min_accuracy: float | None = None,
                      grid_steps: int = 8, refinements: int = 6, max_passes: int = 10) -> torch.Tensor:
    """Per-class logit offsets ``[C]`` (float32, CPU, mean 0*) fitted on validation logits.

    ``objective`` is one of ``"worst"``, ``"budget"``, ``"equalize"`` (see the
    module docstring). ``max_accuracy_drop`` (a fraction in [0, 1]) is the
    accuracy budget of ``"budget"`` and ``"equalize"``: the fitted offsets keep
    ``val_accuracy >= unadjusted_val_accuracy - max_accuracy_drop``; ``"worst"``
    ignores it. ``hold`` (one of ``HOLD_MODES``): ``"cross-fit"`` holds that budget on unseen data, fitting at
    the internal budget the cross-fitted ladder chooses (module docstring; :func:`fit_on_validation`, on
    ``halves``, two disjoint index tensors of the samples, or, when None, stratified halves drawn here with
    seed ``DIRECT_CALL_HALVES_SEED``); ``"none"`` fits at the stated budget. ``min_accuracy`` (a fraction,
    with ``"budget"`` or ``"equalize"``) replaces that relative floor by an absolute one, e.g. another run's
    accuracy minus a budget (the ceiling of re-deciding counts its floor from the run's own accuracy); where
    the unadjusted logits are below it, the search first climbs towards it (candidates are ranked by their
    shortfall first); an absolute floor is taken as given (``hold`` scales the relative budget only).
    ``grid_steps`` candidates each side, ``refinements`` step halvings and at most ``max_passes`` passes per
    step size bound the work.

    Classes with no validation sample cannot be measured: they are left out of
    the objective and their offset stays at the common level.

    The fit runs on a CPU copy in float32; ``apply_logit_offsets`` on float32
    logits reproduces the validation predictions it optimised. (*The shift to
    mean 0 is skipped in the rare case where its float rounding would flip a
    validation prediction that sits exactly on a boundary.)
    """
    logits, targets = _checked_inputs(val_logits, val_targets)
    max_accuracy_drop, search = _checked_options(objective, max_accuracy_drop, hold, grid_steps, refinements,
                                                 max_passes)
    if min_accuracy is not None:
        min_accuracy = _fraction("min_accuracy", min_accuracy)
        if objective == "worst":
            raise ValueError("min_accuracy is a floor for the 'budget' and 'equalize' objectives; "
                             "objective='worst' has no accuracy floor")
    if hold == "cross-fit" and objective in BUDGETED_OBJECTIVES and min_accuracy is None:
        if halves is None:
            halves = stratified_halves(targets, DIRECT_CALL_HALVES_SEED)
        return fit_on_validation(logits, targets, halves, hold=hold, objective=objective,
                                 max_accuracy_drop=max_accuracy_drop, **search).offsets
    return _fit_at_budget(logits, targets, objective, max_accuracy_drop, min_accuracy, search)


class ValidationFit(NamedTuple):
    """What a post-hoc run takes from its validation split (:func:`fit_on_validation`)."""

    offsets: torch.Tensor  # fitted on the whole validation split: what the test split gets
    cross_fitted_logits: torch.Tensor  # the validation logits, each half adjusted by offsets fitted on the other
    details: dict  # what the run records: the budget stated, the one held, the cross-fitted drop, the rungs tried


def fit_on_validation(val_logits: torch.Tensor, val_targets: torch.Tensor,
                      halves: tuple[torch.Tensor, torch.Tensor], *, hold: str = "cross-fit", objective: str = "worst",
                      max_accuracy_drop: float = 0.01, grid_steps: int = 8, refinements: int = 6,
                      max_passes: int = 10) -> ValidationFit:
    """The offsets a post-hoc run applies to the test split, its cross-fitted validation logits and what it
    records, from the validation split and two disjoint ``halves`` of it (index tensors; the post-hoc kind
    passes stratified, seeded halves). With ``hold="cross-fit"`` and a budgeted objective, the budget is held
    by the cross-fitted ladder of the module docstring; otherwise the offsets are fitted at the stated budget
    and the halves give only the cross-fitted scores. ``details``: ``hold``, ``stated_budget`` (None for
    ``"worst"``), ``internal_budget`` (the budget the offsets were fitted at; None where no rung held and the
    offsets stayed at 0, or for ``"worst"``), ``cross_fitted_drop`` (unadjusted minus cross-fitted validation
    accuracy at it), ``adjusted`` (False where the offsets stayed at 0) and ``budget_ladder`` (each rung tried
    as [internal budget, cross-fitted drop, its standard error]; empty without a ladder)."""
    logits, targets = _checked_inputs(val_logits, val_targets)
    max_accuracy_drop, search = _checked_options(objective, max_accuracy_drop, hold, grid_steps, refinements,
                                                 max_passes)
    halves = _checked_halves(halves, len(targets))
    num_samples = len(targets)
    unadjusted_hits = _hits(logits, targets)

    def cross_fitted(budget: float) -> torch.Tensor:
        """Each half predicted by offsets fitted at ``budget`` on the other half."""
        predicted = logits.clone()
        for fit_on, predict_on in (halves, halves[::-1]):
            offsets = _fit_at_budget(logits[fit_on], targets[fit_on], objective, budget, None, search)
            predicted[predict_on] = apply_logit_offsets(logits[predict_on], offsets)
        return predicted

    budgeted = objective in BUDGETED_OBJECTIVES
    ladder: list[list[float]] = []
    if hold == "cross-fit" and budgeted:
        internal, scores = None, logits  # no rung held: offsets at 0, the run as it was
        # A drop is a ratio of integer counts over the same samples: compared in hits, with a margin far below
        # one hit for the float rounding of budget * samples.
        allowed_hits = max_accuracy_drop * num_samples + 1e-9
        unadjusted_right = logits.argmax(1) == targets
        for budget in _ladder(max_accuracy_drop):
            predicted = cross_fitted(budget)
            lost_hits = unadjusted_hits - _hits(predicted, targets)
            # One standard error of the cross-fitted drop (from the per-sample changes, right -> wrong = +1,
            # wrong -> right = -1): the drop estimated on 2,000 validation images is noisy enough that a rung
            # whose point estimate just fits loses more than the budget on test.
            change = unadjusted_right.double() - (predicted.argmax(1) == targets).double()
            margin_hits = float(change.std(unbiased=True)) * math.sqrt(num_samples) if num_samples > 1 else 0.0
            ladder.append([budget, lost_hits / num_samples, margin_hits / num_samples])
            if lost_hits + margin_hits <= allowed_hits:
                internal, scores = budget, predicted
                break
    else:
        internal = max_accuracy_drop if budgeted else None
        scores = cross_fitted(max_accuracy_drop)
    if internal is None and budgeted:
        offsets = torch.zeros(logits.shape[1])
    else:
        offsets = _fit_at_budget(logits, targets, objective, max_accuracy_drop if internal is None else internal,
                                 None, search)
    details = {"hold": hold, "stated_budget": max_accuracy_drop if budgeted else None,
               "internal_budget": internal, "adjusted": not (budgeted and internal is None),
               "cross_fitted_drop": (unadjusted_hits - _hits(scores, targets)) / num_samples,
               "budget_ladder": ladder}
    return ValidationFit(offsets, scores, details)


def _fit_at_budget(logits: torch.Tensor, targets: torch.Tensor, objective: str, max_accuracy_drop: float,
                   min_accuracy: float | None, search: dict) -> torch.Tensor:
    """The search itself, on checked inputs, at the budget as given."""
    with _one_cpu_thread():
        problem = _OffsetProblem(logits, targets, objective, max_accuracy_drop, min_accuracy)
        offsets = _coordinate_ascent(problem, search["grid_steps"], search["refinements"], search["max_passes"])
        return _centred(offsets, problem)


def _ladder(stated_budget: float) -> list[float]:
    """The internal budgets to try, largest first, each once (a stated budget of 0 is one rung)."""
    budgets: list[float] = []
    for share in BUDGET_LADDER:
        if share * stated_budget not in budgets:
            budgets.append(share * stated_budget)
    return budgets


def _hits(logits: torch.Tensor, targets: torch.Tensor) -> int:
    return int((logits.argmax(dim=1) == targets).sum())


# --------------------------------------------------------------------------
# The search
# --------------------------------------------------------------------------

@contextmanager
def _one_cpu_thread():
    """Run the search single-threaded.

    It is a long chain of small tensor operations, for which handing work to
    other threads costs more than it saves, and on a busy machine the thread
    hand-offs made it 10-100x slower in our measurements.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _coordinate_ascent(problem: "_OffsetProblem", grid_steps: int, refinements: int,
                       max_passes: int) -> torch.Tensor:
    """Coordinate ascent over the classes on a grid that halves ``refinements`` times."""
    offsets = torch.zeros(problem.logits.shape[1])
    steps = torch.arange(-grid_steps, grid_steps + 1, dtype=torch.float32)
    # Among equally good candidates the smallest move wins (the current offset,
    # move 0, first), so an offset only moves on a strict improvement.
    move_sizes = steps.abs().numpy()

    step = 0.5 * problem.logit_scale
    for _ in range(refinements):
        for _ in range(max_passes):
            moved = False
            for c in problem.fitted_classes:
                candidates = offsets[c] + step * steps
                best = problem.best_candidate(offsets, c, candidates, move_sizes)
                if steps[best] != 0:
                    offsets[c] = candidates[best]
                    moved = True
            if not moved:
                break
        step /= 2
    return offsets


class _OffsetProblem:
    """Validation logits and targets, and how to score candidate offsets for one class."""

    def __init__(self, logits: torch.Tensor, targets: torch.Tensor, objective: str,
                 max_accuracy_drop: float, min_accuracy: float | None = None) -> None:
        self.logits = logits
        self.targets = targets
        self.objective = objective
        num_samples, num_classes = logits.shape
        # A [candidates, N] x [N, C] product of 0/1 matrices counts every class's hits.
        self.one_hot = torch.nn.functional.one_hot(targets, num_classes).float()
        self.class_counts = self.one_hot.sum(dim=0).double()
        self.present = self.class_counts > 0
        self.fitted_classes = torch.nonzero(self.present).flatten().tolist()
        std = float(logits.std()) if logits.numel() > 1 else 0.0
        self.logit_scale = std if std > 0 else 1.0

        unadjusted_hits = int((logits.argmax(dim=1) == targets).sum())
        self.min_hits = -math.inf
        if objective in ("budget", "equalize"):
            floor = unadjusted_hits - max_accuracy_drop * num_samples if min_accuracy is None \
                else min_accuracy * num_samples
            self.min_hits = floor - 1e-9

    def candidate_hits(self, offsets: torch.Tensor, c: int, candidates: torch.Tensor
                       ) -> torch.Tensor:
        """Correctness ``[G, N]`` of every sample when class c's offset is each candidate."""
        shifted = self.logits + offsets
        rivals = shifted.clone()
        rivals[:, c] = -math.inf
        best_rival, rival_class = rivals.max(dim=1)  # first index among equal maxima, like argmax
        own = self.logits[:, c][None, :] + candidates[:, None]  # same float sum as `shifted`
        wins = (own > best_rival) | ((own == best_rival) & (rival_class > c))
        is_c = (self.targets == c)[None, :]
        rival_right = (rival_class == self.targets)[None, :]
        return torch.where(is_c, wins, ~wins & rival_right)

    def keys(self, hits: torch.Tensor) -> np.ndarray:
        """The objective as keys ``[G, K]``, compared lexicographically (column 0 first), larger is better.

        TPRs and accuracies are correctly rounded ratios of integers, so equal
        values compare equal exactly and no tolerance is needed.
        """
        # float32 counts are exact up to 2**24 samples; float64 for the ratios.
        class_hits = (hits.float() @ self.one_hot).double()[:, self.present]
        tpr = class_hits / self.class_counts[self.present]
        accuracy = hits.sum(dim=1).double() / hits.shape[1]
        if self.objective == "equalize":
            return torch.stack([-tpr.std(dim=1, unbiased=False), accuracy], dim=1).numpy()
        ascending = tpr.sort(dim=1).values
        return torch.cat([ascending, accuracy[:, None]], dim=1).numpy()

    def best_candidate(self, offsets: torch.Tensor, c: int, candidates: torch.Tensor,
                       move_sizes: np.ndarray) -> int:
        """Index of the best feasible candidate; among equals, the one with the smallest move."""
        hits = self.candidate_hits(offsets, c, candidates)
        # How many hits a candidate lacks to reach the accuracy floor (0 when feasible): the current
        # offsets are feasible under a relative floor, so only an absolute floor (min_accuracy) above
        # the unadjusted accuracy ever makes the search climb on it.
        shortfall = np.maximum(0.0, self.min_hits - hits.sum(dim=1).double().numpy())
        keys = self.keys(hits)
        # np.lexsort sorts by its last key first: shortfall, then each objective key
        # (negated: larger is better), then the move size.
        order = np.lexsort((move_sizes, *(-keys[:, ::-1]).T, shortfall))
        return int(order[0])


def _centred(offsets: torch.Tensor, problem: _OffsetProblem) -> torch.Tensor:
    """Offsets shifted to mean 0, unless rounding in the shift would change a validation prediction.

    A common shift cannot change an argmax in exact arithmetic, but float32 sums
    can flip a sample sitting exactly on a boundary; then the unshifted offsets
    (whose predictions the search scored exactly) are returned.
    """
    centred = offsets - offsets.mean()
    before = (problem.logits + offsets).argmax(dim=1)
    after = (problem.logits + centred).argmax(dim=1)
    return centred if torch.equal(before, after) else offsets.clone()


# --------------------------------------------------------------------------
# Argument checks
# --------------------------------------------------------------------------

def _describe(value: Any) -> str:
    if isinstance(value, torch.Tensor):
        return f"a tensor of shape {tuple(value.shape)}"
    return f"{type(value).__name__}"


def _checked_inputs(val_logits: Any, val_targets: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """CPU float32 logits ``[N, C]`` and int64 targets ``[N]``, or a ValueError saying what is wrong."""
    if not isinstance(val_logits, torch.Tensor) or val_logits.dim() != 2:
        raise ValueError(f"val_logits must be a tensor of shape [N, C], got {_describe(val_logits)}")
    num_samples, num_classes = val_logits.shape
    if num_samples == 0 or num_classes < 2:
        raise ValueError(f"val_logits must hold at least one sample and two classes, got shape "
                         f"{tuple(val_logits.shape)}")
    if not val_logits.is_floating_point():
        raise ValueError(f"val_logits must be floating point, got dtype {val_logits.dtype}")
    logits = val_logits.detach().to("cpu", torch.float32)
    if not torch.isfinite(logits).all():
        raise ValueError("val_logits contains NaN or infinite values")

    if not isinstance(val_targets, torch.Tensor) or val_targets.shape != (num_samples,):
        raise ValueError(f"val_targets must be a tensor of shape [N] = [{num_samples}], got {_describe(val_targets)}")
    if val_targets.is_floating_point() or val_targets.dtype == torch.bool:
        raise ValueError(f"val_targets must hold integer class indices, got dtype {val_targets.dtype}")
    targets = val_targets.detach().to("cpu", torch.long)
    low, high = int(targets.min()), int(targets.max())
    if low < 0 or high >= num_classes:
        raise ValueError(f"val_targets must lie in [0, {num_classes - 1}], found values in [{low}, {high}]")
    return logits, targets


def _checked_options(objective: Any, max_accuracy_drop: Any, hold: Any, grid_steps: Any, refinements: Any,
                     max_passes: Any) -> tuple[float, dict]:
    """The options both fits take, checked: the budget as a float and the search's bounds; a ValueError names a
    wrong one and what is allowed."""
    if objective not in OFFSET_OBJECTIVES:
        raise ValueError(f"objective={objective!r} is not allowed: expected one of {OFFSET_OBJECTIVES}")
    max_accuracy_drop = _fraction("max_accuracy_drop", max_accuracy_drop)
    if hold not in HOLD_MODES:
        raise ValueError(f"hold={hold!r} is not allowed: expected one of {HOLD_MODES}")
    search = {"grid_steps": check_positive_int("grid_steps", grid_steps),
              "refinements": check_positive_int("refinements", refinements),
              "max_passes": check_positive_int("max_passes", max_passes)}
    return max_accuracy_drop, search


def _checked_halves(halves: Any, num_samples: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Two non-empty, disjoint int64 index tensors into ``num_samples`` samples, or a ValueError."""
    if not (isinstance(halves, (tuple, list)) and len(halves) == 2
            and all(isinstance(half, torch.Tensor) and half.dim() == 1 for half in halves)):
        raise ValueError(f"halves must be two 1-d index tensors of the samples, got {_describe(halves)}"
                         + (f" of {len(halves)} items" if isinstance(halves, (tuple, list)) else ""))
    first, second = (half.detach().to("cpu", torch.long) for half in halves)
    if not len(first) or not len(second):
        raise ValueError(f"halves of sizes {len(first)} and {len(second)} are not allowed: each half must hold "
                         "at least one sample")
    joined = torch.cat([first, second])
    if int(joined.min()) < 0 or int(joined.max()) >= num_samples:
        raise ValueError(f"halves index samples in [{int(joined.min())}, {int(joined.max())}]: expected indices in "
                         f"[0, {num_samples - 1}]")
    if len(torch.unique(joined)) != len(joined):
        raise ValueError("halves share samples: expected two disjoint index sets")
    return first, second


def _fraction(name: str, value: Any) -> float:
    if not (_is_number(value) and 0.0 <= value <= 1.0):
        raise ValueError(f"{name}={value!r} is not allowed: expected a number in [0, 1]")
    return float(value)


# --------------------------------------------------------------------------
# The entry: offsets fitted on a finished run's validation logits ("of", default the baseline), applied to its
# test logits; the kind (lbw_utils.methods.kinds.PostHoc) draws the validation split's halves and records what
# fit_on_validation returns (its cross-fitted validation scores, the budget held).
# --------------------------------------------------------------------------

# "of": the trained run to adjust, itself a method dict, checked by the kind (experiments.check_method).
METHOD_DICT = Parameter(None, lambda v: isinstance(v, dict), "a method dict such as {'name': 'baseline'}")

# The search's defaults; a name says only a bound that differs from them.
SEARCH_DEFAULTS = {"grid_steps": 8, "refinements": 6, "max_passes": 10}


def _posthoc_text(options: dict) -> str:
    """The reader's name of the offsets (the run they adjust is named before it): their objective, the budget
    where the objective has one, and what differs from the usual fit."""
    parts = {"worst": ["worst class"], "budget": [], "equalize": ["equal recall"]}[options["objective"]]
    if options["objective"] in BUDGETED_OBJECTIVES:
        parts.append(f"budget {points(options['max_accuracy_drop'])}")
        if options["hold"] == "none":
            parts.append("not cross-fitted")
    parts += [f"{key.replace('_', ' ')} {options[key]}" for key, default in SEARCH_DEFAULTS.items()
              if options[key] != default]
    return f"post-hoc offsets ({', '.join(parts)})"


SPECS = [
    MethodSpec("posthoc", "posthoc",
               {"objective": choice("worst", OFFSET_OBJECTIVES), "max_accuracy_drop": fraction(0.01),
                "hold": choice("cross-fit", HOLD_MODES),
                **{key: positive_int(default) for key, default in SEARCH_DEFAULTS.items()},
                "of": METHOD_DICT},
               adjustment=Adjustment(fit_on_validation, apply_logit_offsets),
               label_leading=("objective",), label_short={"max_accuracy_drop": "drop"},
               summary="per-class logit offsets fitted on validation, applied to a trained run's logits",
               display=_posthoc_text),
]
