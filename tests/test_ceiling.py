"""The ceiling of re-deciding, the absolute accuracy floor of the offset search, Holm's adjustment and the
paired table's ceiling and p-value columns."""

import math

import numpy as np
import pytest
import scipy.stats
import torch

from lbw_utils import stats
from lbw_utils.ceiling import CEILING_LABEL, ceiling
from lbw_utils.reporting.sentences import goal_statement
from lbw_utils.reporting.tables import formatted_paired
from lbw_utils.methods import apply_logit_offsets, fit_logit_offsets


def _scores(n: int = 3000, classes: int = 5, seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    targets = torch.arange(n) % classes
    # class 0 is hard: its own logit is raised less than the others'
    lift = torch.where(targets == 0, 0.6, 2.0)
    logits = torch.randn(n, classes, generator=generator)
    logits[torch.arange(n), targets] += lift
    return logits, targets


def _accuracy(logits, targets, offsets=None):
    shifted = logits if offsets is None else apply_logit_offsets(logits, offsets)
    return float((shifted.argmax(1) == targets).double().mean())


def test_ceiling_lifts_the_worst_class_within_the_budget_from_the_baseline():
    logits, targets = _scores()
    base_accuracy = _accuracy(logits, targets)
    result = ceiling(logits, targets, base_accuracy)
    before = min(float(((logits.argmax(1) == targets) & (targets == c)).sum() / (targets == c).sum())
                 for c in range(5))
    assert result["worst_class_tpr"] > before + 0.05
    assert result["accuracy"] >= base_accuracy - 0.005 - 1e-12
    assert result["reached_floor"]
    assert math.isclose(result["min_accuracy"], base_accuracy - 0.005)
    # the reported numbers are those of the returned offsets
    assert math.isclose(_accuracy(logits, targets, torch.tensor(result["offsets"])), result["accuracy"])


def test_absolute_floor_above_the_runs_own_accuracy_makes_the_search_climb():
    logits, targets = _scores(seed=1)
    own = _accuracy(logits, targets)
    offsets = fit_logit_offsets(logits, targets, "budget", min_accuracy=min(1.0, own + 0.002))
    assert _accuracy(logits, targets, offsets) >= own  # never lower than where it started


def test_relative_floor_unchanged_by_the_absolute_option():
    logits, targets = _scores(seed=2)
    relative = fit_logit_offsets(logits, targets, "budget", max_accuracy_drop=0.01, hold="none")
    same = fit_logit_offsets(logits, targets, "budget", min_accuracy=_accuracy(logits, targets) - 0.01)
    assert torch.equal(relative.argsort(), same.argsort()) or torch.allclose(relative, same)


@pytest.mark.parametrize("bad", [-0.1, 1.5, float("nan")])
def test_bad_baseline_accuracy_is_refused(bad):
    logits, targets = _scores(n=100)
    with pytest.raises(ValueError, match="baseline_accuracy"):
        ceiling(logits, targets, bad)


def test_min_accuracy_with_worst_objective_is_refused():
    logits, targets = _scores(n=100)
    with pytest.raises(ValueError, match="min_accuracy"):
        fit_logit_offsets(logits, targets, "worst", min_accuracy=0.5)


def test_holm_matches_the_step_down_definition():
    p = [0.01, 0.04, float("nan"), 0.03, 0.5]
    adjusted = stats.holm(p)
    # m = 4 present: sorted 0.01, 0.03, 0.04, 0.5 -> 0.04, 0.09, 0.09 (monotone), 0.5
    assert np.allclose(adjusted[[0, 3, 1, 4]], [0.04, 0.09, 0.09, 0.5])
    assert math.isnan(adjusted[2])
    assert np.all(stats.holm([0.9, 0.8]) <= 1.0)


def _record(method, seed, accuracy, worst, ceiling_worst, val_worst=0.5):
    summary = {"accuracy": accuracy, "balanced_accuracy": accuracy, "tpr_std": 0.1, "worst_class_tpr": worst,
               "worst_class": "a", "tpr": [worst, 1.0], "macro_f1": accuracy}
    return {"dataset": "toy", "method": {"name": "baseline" if method == "baseline" else "static"},
            "method_label": method, "seed": seed, "test": summary,
            "val": {**summary, "worst_class_tpr": val_worst}, "train_seconds": 1.0,
            "ceiling": {"worst_class_tpr": ceiling_worst}}


def test_paired_table_carries_ceiling_and_holm_p_values():
    records = []
    for seed in range(5):
        records.append(_record("baseline", seed, 0.90 + 0.001 * seed, 0.70 + 0.01 * seed, 0.80 + 0.01 * seed))
        records.append(_record("strong", seed, 0.90, 0.78 + 0.012 * seed, 0.81 + 0.01 * seed))
        records.append(_record("weak", seed, 0.90, 0.70 + 0.01 * seed + (0.01 if seed % 2 else -0.01),
                               0.80 + 0.01 * seed))
    table = stats.paired_table(records)
    strong = table[table["method"] == "strong"].iloc[0]
    raw = scipy.stats.ttest_rel([0.78 + 0.012 * s for s in range(5)], [0.70 + 0.01 * s for s in range(5)]).pvalue
    assert math.isclose(strong["p_worst_class_tpr"], raw)
    weak = table[table["method"] == "weak"].iloc[0]
    expected = stats.holm([strong["p_worst_class_tpr"], weak["p_worst_class_tpr"]])
    assert np.allclose([strong["p_worst_class_tpr_holm"], weak["p_worst_class_tpr_holm"]], expected)
    assert strong["p_worst_class_tpr_holm"] > raw  # adjusted over the two methods compared
    assert strong["methods_compared"] == 2
    base = table[table["method"] == "baseline"].iloc[0]
    assert math.isclose(base["d_ceiling"], 0.10, abs_tol=1e-9)
    shown = formatted_paired(table)
    assert shown["method"].iloc[-1] == CEILING_LABEL
    assert shown["Δ worst-class TPR (pts)"].iloc[-1].startswith("10.0")
    # the ceiling row is display only: it is on no front and never "best"
    assert CEILING_LABEL not in set(table["method"])
    goal = goal_statement(table, "toy")
    assert "2 methods compared" in goal and "ceiling of re-deciding" in goal and "% of its own ceiling" in goal
