"""The ceiling of re-deciding: how far per-class logit offsets fitted on the *test* split itself can lift
the worst class, within the goal's accuracy budget. A reference, never a method.

For a trained run, offsets are fitted on its own test logits and test labels with the post-hoc search
(:func:`lbw_utils.methods.fit_logit_offsets`, leximin objective: the worst class first, then the
second-worst, ...), under the floor "test accuracy at least the run's *own* test accuracy minus
:data:`CEILING_BUDGET`" (the run records call :func:`ceiling` so). The worst-class TPR it reaches is the most any
re-decision of that run's scores can give at that accuracy; no deployable method may look at test labels, so the
ceiling never enters a selection, a Pareto front or a "best" statement. On the baseline it is the height a
threshold shift alone can reach; a method reaching some share of its *own* ceiling says how much of that one
run's re-decision room it used.

Two rows' ceilings do not compare: a floor counted from each row's accuracy (or from one baseline's) gives a more
accurate row more accuracy to spend, which mixes "separates better" with a general accuracy gain. The
*re-decision frontier* (:func:`redecision_frontier`) asks instead at a ladder of absolute accuracy levels
(:func:`accuracy_ladder`): at each, the most worst-class TPR re-deciding a run's test scores can reach, so two
runs' curves compare at the same accuracy (:mod:`lbw_utils.studies.redecision` pairs them by seed).

A weighting that only reaches its baseline's frontier moved thresholds; one above it separates better. Cui et al.,
"Classes Are Not Equal: An Empirical Study on Image Recognition Fairness" (CVPR 2024, arXiv 2402.18133), find the
disparity on balanced data in the representation rather than in the classifier's bias: the same finding, reached
from the representation's side.
"""

from __future__ import annotations

import math
import numbers

import torch

from lbw_utils.methods import apply_logit_offsets, fit_logit_offsets
from lbw_utils.metrics import per_class_tpr

# The goal's accuracy budget (lbw_utils.stats.GOAL_MAX_ACCURACY_LOSS): at most half a point below the baseline.
CEILING_BUDGET = 0.005
CEILING_LABEL = "ceiling (offsets fitted on test) - not a method"
# The re-decision frontier's ladder: absolute accuracy levels a quarter point apart, two points deep. Levels are
# rounded to 4 decimals (so 0.9125 is 0.9125, not 0.91249999), which a step below 0.0001 would merge.
LADDER_STEP = 0.0025
LADDER_DEPTH = 0.02
SMALLEST_STEP = 0.0001
# A floor counts as reached up to float noise in the accuracy (a ratio of integers).
REACHED_TOLERANCE = 1e-12


def ceiling(test_logits: torch.Tensor, test_targets: torch.Tensor, baseline_accuracy: float,
            budget: float = CEILING_BUDGET) -> dict:
    """Offsets fitted on ``test_logits`` themselves, keeping accuracy >= ``baseline_accuracy - budget``.

    Returns the worst-class TPR and accuracy they reach, the per-class TPRs, the floor and whether it
    was reached (a run far below its baseline's accuracy may not climb back to it), and the offsets.
    """
    if not 0 <= baseline_accuracy <= 1 or math.isnan(baseline_accuracy):
        raise ValueError(f"baseline_accuracy={baseline_accuracy!r} must be a fraction in [0, 1]")
    floor = max(0.0, baseline_accuracy - budget)
    found = _redecide(test_logits.detach().float().cpu(), test_targets.detach().cpu(), floor)
    return {
        "worst_class_tpr": found["worst_class_tpr"],
        "accuracy": found["accuracy"],
        "tpr": found["tpr"],
        "min_accuracy": floor,
        "reached_floor": found["accuracy"] >= floor - REACHED_TOLERANCE,
        "budget": budget,
        "offsets": found["offsets"],
        "of": "offsets fitted on the test split itself (a reference, not a method)",
    }


def accuracy_ladder(top: float, depth: float = LADDER_DEPTH, step: float = LADDER_STEP) -> list[float]:
    """Absolute accuracy levels ``top, top - step, ...`` down to ``top - depth`` (inclusive where ``depth`` is a
    multiple of ``step``), each rounded to 4 decimals."""
    if not _is_fraction(top):
        raise ValueError(f"top={top!r} must be an accuracy in [0, 1]")
    if not isinstance(depth, numbers.Real) or math.isnan(depth) or depth < 0:
        raise ValueError(f"depth={depth!r} must be a number >= 0 (how far below top the ladder reaches)")
    if not isinstance(step, numbers.Real) or math.isnan(step) or step < SMALLEST_STEP:
        raise ValueError(f"step={step!r} must be at least {SMALLEST_STEP} (levels are rounded to 4 decimals)")
    if round(top - depth, 4) < 0:
        raise ValueError(f"top={top!r} with depth={depth!r} puts a level at {top - depth:.4f}, below 0; "
                         f"allowed: depth <= top")
    rungs = math.floor(round(depth / step, 9))  # 0.02 / 0.0025 is 8.000000000000002: 8 rungs below the top
    return [round(top - rung * step, 4) for rung in range(rungs + 1)]


def redecision_frontier(test_logits: torch.Tensor, test_targets: torch.Tensor, levels) -> list[dict]:
    """Per absolute accuracy ``level``: the most worst-class TPR per-class offsets fitted on the test logits
    themselves reach while keeping test accuracy >= the level (a reference curve, never a method).

    Offsets are fitted once per level. The search is a heuristic, and offsets fitted for one level may keep
    accuracy above another and lift the worst class further there, so each level reports the best of all the
    fits whose accuracy is at least the level (most worst-class TPR, then most accuracy; the curve never rises
    with the level). Each dict: ``level``, ``worst_class_tpr``, ``accuracy`` (of the offsets reported),
    ``reached`` (some fit kept accuracy >= level; where none did, a run less accurate than the level could not
    climb to it, and the level reports where its own search ended), in the order of ``levels``."""
    levels = list(levels)
    for level in levels:  # every level checked before the first fit
        if not _is_fraction(level):
            raise ValueError(f"level {level!r} is not allowed: a level is an accuracy in [0, 1]")
    logits, targets = test_logits.detach().float().cpu(), test_targets.detach().cpu()
    fits = {level: _redecide(logits, targets, level) for level in dict.fromkeys(levels)}
    found = []
    for level in levels:
        meeting = [fit for fit in fits.values() if fit["accuracy"] >= level - REACHED_TOLERANCE]
        best = max(meeting, key=lambda fit: (fit["worst_class_tpr"], fit["accuracy"])) if meeting else fits[level]
        found.append({"level": level, "worst_class_tpr": best["worst_class_tpr"], "accuracy": best["accuracy"],
                      "reached": bool(meeting)})
    return found


def _redecide(logits: torch.Tensor, targets: torch.Tensor, floor: float) -> dict:
    """Offsets fitted on (CPU float32) ``logits`` with accuracy floor ``floor``, and what they reach."""
    offsets = fit_logit_offsets(logits, targets, "budget", min_accuracy=floor)
    predictions = apply_logit_offsets(logits, offsets).argmax(1)
    tpr = per_class_tpr(targets, predictions, logits.shape[1])
    present = tpr[~torch.isnan(tpr)]
    return {"worst_class_tpr": float(present.min()), "accuracy": int((predictions == targets).sum()) / len(targets),
            "tpr": tpr.tolist(), "offsets": offsets.tolist()}


def _is_fraction(value) -> bool:
    return (isinstance(value, numbers.Real) and not isinstance(value, bool) and not math.isnan(value)
            and 0 <= value <= 1)
