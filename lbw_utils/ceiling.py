"""The ceiling of re-deciding: how far per-class logit offsets fitted on the *test* split itself can lift
the worst class, within the goal's accuracy budget. A reference, never a method.

For a trained run, offsets are fitted on its own test logits and test labels with the post-hoc search
(:func:`lbw_utils.methods.fit_logit_offsets`, leximin objective: the worst class first, then the
second-worst, ...), under the floor "test accuracy at least the same seed's *baseline* test accuracy
minus :data:`CEILING_BUDGET`". The worst-class TPR it reaches is the most any re-decision of that run's
scores can give at that accuracy; no deployable method may look at test labels, so the ceiling never
enters a selection, a Pareto front or a "best" statement.

What it tells apart: on the baseline it is the height a threshold shift alone can reach; on top of a
weighting it says whether the weighting changed what its representation separates (its ceiling rises
above the baseline's) or only moved the thresholds (its ceiling stays where the baseline's is, and the
method reaches some fraction of it).
"""

from __future__ import annotations

import math

import torch

from lbw_utils.methods import apply_logit_offsets, fit_logit_offsets
from lbw_utils.metrics import per_class_tpr

# The goal's accuracy budget (lbw_utils.stats.GOAL_MAX_ACCURACY_LOSS): at most half a point below the baseline.
CEILING_BUDGET = 0.005
CEILING_LABEL = "ceiling (offsets fitted on test) - not a method"


def ceiling(test_logits: torch.Tensor, test_targets: torch.Tensor, baseline_accuracy: float,
            budget: float = CEILING_BUDGET) -> dict:
    """Offsets fitted on ``test_logits`` themselves, keeping accuracy >= ``baseline_accuracy - budget``.

    Returns the worst-class TPR and accuracy they reach, the per-class TPRs, the floor and whether it
    was reached (a run far below its baseline's accuracy may not climb back to it), and the offsets.
    """
    if not 0 <= baseline_accuracy <= 1 or math.isnan(baseline_accuracy):
        raise ValueError(f"baseline_accuracy={baseline_accuracy!r} must be a fraction in [0, 1]")
    floor = max(0.0, baseline_accuracy - budget)
    logits = test_logits.detach().float().cpu()
    targets = test_targets.detach().cpu()
    offsets = fit_logit_offsets(logits, targets, "budget", min_accuracy=floor)
    predictions = apply_logit_offsets(logits, offsets).argmax(1)
    tpr = per_class_tpr(targets, predictions, logits.shape[1])
    present = tpr[~torch.isnan(tpr)]
    accuracy = int((predictions == targets).sum()) / len(targets)
    return {
        "worst_class_tpr": float(present.min()),
        "accuracy": accuracy,
        "tpr": tpr.tolist(),
        "min_accuracy": floor,
        "reached_floor": accuracy >= floor - 1e-12,
        "budget": budget,
        "offsets": offsets.tolist(),
        "of": "offsets fitted on the test split itself (a reference, not a method)",
    }
